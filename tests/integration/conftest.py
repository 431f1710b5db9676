"""Fixtures of the integration tier: a real Mosquitto configured as in production.

- ``broker`` (session): one broker shared by every test that only connects, publishes and
  subscribes. Its accounts never change; tests use their own payloads, so they do not disturb
  each other.
- ``fresh_broker`` (function): a broker of one's own, for tests that revoke accounts, restart it
  or leave persistent sessions behind.
- ``peers`` / ``fresh_peers``: MQTT clients for those brokers, all closed when the test ends.

When a test fails, the log of the broker it used is attached to the report.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from broker import Broker, Peers, start_broker
from facility import Site


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    started = start_broker(tmp_path_factory.mktemp("mosquitto"))
    yield started
    started.stop()


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[Broker]:
    started = start_broker(tmp_path / "mosquitto")
    yield started
    started.stop()


@pytest.fixture
def peers(broker: Broker) -> Iterator[Peers]:
    made = Peers(broker)
    yield made
    made.close_all()


@pytest.fixture
def fresh_peers(fresh_broker: Broker) -> Iterator[Peers]:
    made = Peers(fresh_broker)
    yield made
    made.close_all()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.failed:
        for name, value in getattr(item, "funcargs", {}).items():
            if isinstance(value, Broker):
                report.sections.append((f"mosquitto log ({name})", value.log()[-20_000:]))
    return report


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A provisioned facility home with its broker running and one node provisioned (qr-0001)."""
    s = Site(tmp_path)
    yield s
    s.stop()
