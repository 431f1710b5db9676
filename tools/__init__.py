"""cccd-edge tools: the ``cccd-edge`` command line and the helpers behind it (provisioning, firmware
build and flash, reports, benchmarks, the demo, and running code under the MicroPython port)."""
