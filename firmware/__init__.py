"""The MicroPython application of the ESP32 QR node (DESIGN.md); it imports only ``cccd``.

    scanner   frames from the UART QR module, double reads suppressed
    node      the read cycle: frame → parse → pseudonym → Read → sealed → outbox
    outbox    sealed reads in flash until their PUBACK (segmented log, crash-safe, bounded)
    seqstore  sequence numbers reserved ahead in flash: no nonce twice
    mqtt      our MQTT 3.1.1 client (why not umqtt or mqtt_as: see the module)
    uplink    the outbox to the broker, in order, at least once
    app       the node: status, inventory, telemetry, results, settings; the main loop
    device    the board: lights, buzzer, display, Wi-Fi, TLS, NTP, watchdog, main()

The same code runs under CPython for the tests (tests/firmware), and under the MicroPython
WebAssembly port in the test tier.
"""
