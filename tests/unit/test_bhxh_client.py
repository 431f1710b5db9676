"""The collector's BHXH client against the fake gateway over real HTTP (sim/bhxh.py)."""

import asyncio
import datetime
import logging
from collections.abc import Iterator

import pytest

from collector.forward import insurance
from collector.forward.bhxh import (
    BhxhClient,
    GatewayAuthError,
    GatewayUnavailableError,
    Officer,
    parse_expiry,
)
from sim import citizens
from sim.bhxh import BhxhGateway, md5_hex

TODAY = datetime.date(2026, 11, 22)
OFFICER = Officer("Phạm Thị Hoa", "001185000123")  # synthetic
PASSWORD = "mật-khẩu-thử"


@pytest.fixture(scope="module")
def people() -> list[citizens.Citizen]:
    return citizens.population(60, seed=7, today=TODAY)


@pytest.fixture
def gateway(people: list[citizens.Citizen]) -> Iterator[BhxhGateway]:
    gw = BhxhGateway(people, username="bv38001", password=PASSWORD, officers=[(OFFICER.name, OFFICER.cccd)])
    gw.start()
    yield gw
    gw.stop()


def _client(gw: BhxhGateway, password: str = PASSWORD, **kw: object) -> BhxhClient:
    return BhxhClient(gw.url, "bv38001", password, timeout=2.0, **kw)  # type: ignore[arg-type]


def _query(c: citizens.Citizen) -> tuple[str, str, str]:
    dob = str(c.dob.year) if c.dob_year_only else c.dob.strftime("%d/%m/%Y")
    return c.cccd, c.name, dob


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_a_valid_card_is_an_insured_visit(gateway: BhxhGateway, people: list[citizens.Citizen]) -> None:
    person = next(c for c in people if c.insurance == "valid")

    async def go() -> dict[str, object]:
        client = _client(gateway)
        try:
            return await client.check(*_query(person), OFFICER)
        finally:
            await client.aclose()

    answer = _run(go())
    v = insurance.verdict(answer)
    assert answer["maKetQua"] == "000" and v.status == "ok" and v.valid_to is not None


def test_every_insurance_state_reaches_its_verdict(
    gateway: BhxhGateway, people: list[citizens.Citizen]
) -> None:
    async def go() -> dict[str, str]:
        client = _client(gateway)
        try:
            out = {}
            for c in people:
                out[c.insurance] = str((await client.check(*_query(c), OFFICER))["maKetQua"])
            return out
        finally:
            await client.aclose()

    codes = _run(go())
    for state, code in codes.items():
        assert code == citizens.BHXH_CODES[state], state
        assert insurance.verdict({"maKetQua": code}).code == code


def test_one_token_however_many_checks_wait(gateway: BhxhGateway, people: list[citizens.Citizen]) -> None:
    async def go() -> int:
        client = _client(gateway)
        try:
            await asyncio.gather(*(client.check(*_query(c), OFFICER) for c in people[:30]))
            return client.token_fetches
        finally:
            await client.aclose()

    assert _run(go()) == 1
    assert gateway.count("token") == 1


def test_an_expired_token_is_refreshed_once(gateway: BhxhGateway, people: list[citizens.Citizen]) -> None:
    async def go() -> tuple[str, int]:
        client = _client(gateway)
        try:
            await client.check(*_query(people[0]), OFFICER)
            gateway.revoke_tokens()  # the gateway forgets every token, as after its restart
            answer = await client.check(*_query(people[0]), OFFICER)
            return str(answer["maKetQua"]), client.token_fetches
        finally:
            await client.aclose()

    code, fetches = _run(go())
    assert code != "401" and fetches == 2


def test_wrong_credentials_are_an_auth_error(gateway: BhxhGateway, people: list[citizens.Citizen]) -> None:
    async def go() -> None:
        client = _client(gateway, password="sai")
        try:
            await client.check(*_query(people[0]), OFFICER)
        finally:
            await client.aclose()

    with pytest.raises(GatewayAuthError):
        _run(go())


def test_an_outage_is_retried_then_reported_and_then_over(
    gateway: BhxhGateway, people: list[citizens.Citizen]
) -> None:
    async def go() -> str:
        client = _client(gateway, attempts=2)
        try:
            gateway.set_outage(True)
            with pytest.raises(GatewayUnavailableError):
                await client.check(*_query(people[0]), OFFICER)
            gateway.set_outage(False)
            return str((await client.check(*_query(people[0]), OFFICER))["maKetQua"])
        finally:
            await client.aclose()

    assert _run(go()) != ""


def test_no_secret_in_any_log_line_or_error(
    gateway: BhxhGateway, people: list[citizens.Citizen], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx's included
    errors: list[str] = []

    async def go() -> None:
        client = _client(gateway, attempts=2)
        try:
            await client.check(*_query(people[0]), OFFICER)
            gateway.set_outage(True)
            try:
                await client.check(*_query(people[0]), OFFICER)
            except GatewayUnavailableError as exc:
                errors.append(repr(exc))
            gateway.set_outage(False)
            gateway.revoke_tokens()
            await client.check(*_query(people[0]), OFFICER)
            token = client._token
            assert token is not None
            secrets = [md5_hex(PASSWORD), token.access_token, token.id_token]
            text = caplog.text + "".join(errors)
            for secret in secrets:
                assert secret not in text
        finally:
            await client.aclose()

    _run(go())
    assert errors and caplog.records  # something was logged and raised: the scan is real


def test_expiry_is_an_absolute_utc_time() -> None:
    assert parse_expiry("2017-11-13T03:51:20.1047187Z") == pytest.approx(1510545080.1047187, abs=1e-3)
    assert (
        parse_expiry("2026-11-22T12:00:00+07:00")
        == datetime.datetime(2026, 11, 22, 5, tzinfo=datetime.UTC).timestamp()
    )
