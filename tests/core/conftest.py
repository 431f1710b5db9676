"""tests/core holds the protocol core's tests that run under both CPython and MicroPython.

Rules for files here: plain ``def test_*()`` functions with no arguments, ``assert`` and
``mpcheck.raises``; import only ``cccd`` and what MicroPython has. tests/test_micropython_tier.py
runs every one of them again under the MicroPython WebAssembly port.
"""
