"""Fixtures of the unit tests: the collector's store on SQLite and on a real PostgreSQL; synthetic
people and the fake BHXH gateway that knows them (a module may define its own ``people``)."""

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pgserver import PostgresServer

from sim import citizens
from sim.bhxh import BhxhGateway

from .desk import OFFICER, TODAY

_names = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    # Not under pytest's tmp_path: as root that is 0700, and the server runs as the postgres user.
    base = Path(tempfile.mkdtemp(prefix="cccd-pg-"))
    server = PostgresServer(base / "cluster").start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'collector.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database(f"test_{next(_names)}")


@pytest.fixture(scope="module")
def people() -> list[citizens.Citizen]:
    return citizens.population(80, seed=3, today=TODAY)


@pytest.fixture
def gateway(people: list[citizens.Citizen]) -> Iterator[BhxhGateway]:
    """The fake BHXH gateway over real HTTP, knowing ``people`` and the counter's officer."""
    gw = BhxhGateway(people, username="bv", password="pw", officers=[(OFFICER.name, OFFICER.cccd)])
    gw.start()
    yield gw
    gw.stop()
