"""``time.ticks_ms`` and ``time.ticks_diff`` on the device; the same from ``time.monotonic`` under
CPython, where the tests run too (no wrap there, which ``ticks_diff`` would handle)."""

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython
    import time

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b
