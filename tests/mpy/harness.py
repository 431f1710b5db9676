"""Runs core test modules under MicroPython and reports every test's outcome (MicroPython side).

tests/test_micropython_tier.py calls ``run(plan)`` in one MicroPython process, with ``plan`` a
list of ``[module name, [test function names]]``. For each module the harness imports it, calls
each named function with no arguments and reports the outcome; any exception, ``SystemExit`` and
``KeyboardInterrupt`` included, fails that test and the harness goes on with the next one.

Reports are single stdout lines: ``MARK`` followed by a JSON object. Everything else on stdout is
the tests' own output, which the tier attaches to the test that printed it (the marker may follow
a test's unterminated line, so the tier looks for it anywhere in a line). The records:

    {"k": "import", "module": m}                       importing m starts
    {"k": "imported", "module": m, "ok": true|false, ...failure}
    {"k": "begin", "module": m, "test": t}             calling t starts
    {"k": "result", "module": m, "test": t, "ok": true|false, "ms": int, ...failure}
    {"k": "end"}                                       every module is done

with failure = "type", "message", "traceback" (as ``sys.print_exception`` prints it).
A test that never gets its "result" (the run crashed or timed out) fails on the tier's side.
"""

import gc
import io
import json
import sys
import time

MARK = "\x1ecccd-mpy:"


def _emit(record):
    print(MARK + json.dumps(record))


def _failure(record, exc):
    buf = io.StringIO()
    sys.print_exception(exc, buf)
    record["ok"] = False
    record["type"] = type(exc).__name__
    record["message"] = str(exc)
    record["traceback"] = buf.getvalue()
    return record


def _import(name):
    _emit({"k": "import", "module": name})
    try:
        module = __import__(name)
    except BaseException as exc:  # an import that fails fails the module's tests, whatever it raised
        _emit(_failure({"k": "imported", "module": name}, exc))
        return None
    _emit({"k": "imported", "module": name, "ok": True})
    return module


def _call(module, name, test):
    record = {"k": "result", "module": name, "test": test}
    fn = getattr(module, test, None)
    if fn is None or not callable(fn):
        record["ok"] = False
        record["type"] = "LookupError"
        record["message"] = f"{name} has no test function {test} at run time"
        record["traceback"] = ""
        record["ms"] = 0
        _emit(record)
        return
    _emit({"k": "begin", "module": name, "test": test})
    gc.collect()
    start = time.ticks_ms()
    try:
        fn()
    except BaseException as exc:  # SystemExit and KeyboardInterrupt from a test fail it too
        _failure(record, exc)
    else:
        record["ok"] = True
    record["ms"] = time.ticks_diff(time.ticks_ms(), start)
    _emit(record)


def run(plan):
    for name, tests in plan:
        module = _import(name)
        if module is not None:
            for test in tests:
                _call(module, name, test)
        # Free the module before the next one: the process runs every core test module.
        module = None
        sys.modules.pop(name, None)
        gc.collect()
    _emit({"k": "end"})
