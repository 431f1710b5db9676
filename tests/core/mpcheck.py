"""Assertion helpers for the core tests, which run under CPython (pytest) and MicroPython alike.

MicroPython has no pytest, so these tests use plain ``assert`` and this module's ``raises``.
"""


def raises(exc_type, fn, *args, **kwargs):
    """Call ``fn`` and return the exception of ``exc_type`` it raised; fail if it raised none."""
    try:
        fn(*args, **kwargs)
    except exc_type as exc:
        return exc
    raise AssertionError("expected %s from %s" % (exc_type.__name__, getattr(fn, "__name__", fn)))
