"""Shared pytest setup for every test tier.

``pytester`` runs pytest inside a test: tests/test_micropython_runner.py uses it to prove that a
failure under MicroPython fails the run. (pytest accepts ``pytest_plugins`` only here, in the
top-level conftest of the test tree.)
"""

pytest_plugins = ["pytester"]
