"""The MicroPython application of the ESP32 QR node (DESIGN.md); it imports only ``cccd``.

Modules: ``outbox`` (sealed reads in flash until PUBACK), ``seqstore`` (sequence numbers reserved
ahead in flash). The same code runs under CPython for the tests (tests/firmware), and under the
MicroPython WebAssembly port in the test tier.
"""
