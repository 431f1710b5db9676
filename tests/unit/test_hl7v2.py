"""The HL7 v2 connector (collector/forward/hl7v2.py): the ADT^A04 it builds, parsed back with
python-hl7; its ACK handling against scripted answers; and the connector over real TCP against the
fake HIS of sim/hl7his.py."""

import asyncio
import contextlib
import dataclasses
import datetime
import re
import unicodedata
from collections.abc import AsyncIterator, Callable
from typing import Any

import hl7
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.forward.his import (
    SID_NATIONAL_ID,
    Coverage,
    HisConnector,
    HisRejectedError,
    HisUnavailableError,
    Visit,
)
from collector.forward.hl7v2 import (
    END,
    START,
    Ack,
    Hl7v2Connector,
    adt_a04,
    message_control_id,
    parse_ack,
    redact,
    verdict,
)
from sim import citizens
from sim.hl7his import Hl7His

from .his_visits import TODAY, VIETNAM, population_visits, visit_of

NOW = datetime.datetime(2025, 3, 3, 8, 15, 5, tzinfo=VIETNAM)
PEOPLE = citizens.population(400, 11, TODAY)
INSURED = next(p for p in PEOPLE if p.insurance == "valid" and p.cmnd)
UNINSURED = next(p for p in PEOPLE if p.insurance == "none")


def build(visit: Visit, **kw: Any) -> Any:
    text = adt_a04(visit, now=NOW, **kw)
    return hl7.parse(text), text


def get(msg: Any, path: str) -> str:
    """A value of the parsed message; "" where the message has none (python-hl7 raises)."""
    try:
        return str(msg[path])
    except IndexError:
        return ""


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


# --- the message -------------------------------------------------------------------------------


def test_adt_a04_carries_the_visit_field_by_field() -> None:
    visit = visit_of(INSURED, 7)
    cov = visit.coverage
    assert cov is not None and cov.valid_to is not None and cov.kcbbd is not None
    msg, text = build(visit)
    assert text.endswith("\r") and "\n" not in text
    assert [str(seg[0]) for seg in msg] == ["MSH", "EVN", "PID", "PD1", "PV1", "IN1"]
    assert msg["MSH.F3"] == "CCCD-EDGE" and msg["MSH.F4"] == "79014"
    assert (msg["MSH.F9.R1.C1"], msg["MSH.F9.R1.C2"], msg["MSH.F9.R1.C3"]) == ("ADT", "A04", "ADT_A01")
    assert msg["MSH.F10"] == message_control_id(visit)
    assert (msg["MSH.F11"], msg["MSH.F12"], msg["MSH.F18"]) == ("P", "2.5", "UNICODE UTF-8")
    assert msg["MSH.F7"] == msg["EVN.F2"] == "20250303081505+0700"
    assert msg["EVN.F6"] == msg["PV1.F44"] == "20250303082230+0700"  # 7 minutes after ARRIVED
    ids = {msg[f"PID.F3.R{r}.C5"]: msg[f"PID.F3.R{r}.C1"] for r in (1, 2, 3)}
    assert ids == {"NNVNM": INSURED.cccd, "CZ": INSURED.cmnd, "HC": cov.card}
    assert msg["PID.F3.R1.C4.S1"] == "BCA" and msg["PID.F3.R1.C4.S2"] == SID_NATIONAL_ID
    family, given_names = msg["PID.F5.R1.C1"], msg["PID.F5.R1.C2"]
    assert f"{family} {given_names}" == INSURED.name and family == INSURED.name.split()[0]
    assert msg["PID.F5.R1.C7"] == "L"
    assert msg["PID.F7"] == (
        str(INSURED.dob.year) if INSURED.dob_year_only else INSURED.dob.strftime("%Y%m%d")
    )
    assert msg["PID.F8"] == INSURED.sex
    assert (msg["PID.F11.R1.C1"], msg["PID.F11.R1.C6"], msg["PID.F11.R1.C7"]) == (INSURED.address, "VNM", "H")
    assert (msg["PD1.F3.R1.C7"], msg["PD1.F3.R1.C10"]) == ("FI", cov.kcbbd)
    assert (msg["PV1.F2"], msg["PV1.F3.R1.C1"], msg["PV1.F3.R1.C4"]) == ("O", "quay-1", "79014")
    assert (msg["PV1.F19.R1.C1"], msg["PV1.F19.R1.C5"]) == ("79014/quay-1/7", "VN")
    assert (msg["IN1.F2.R1.C1"], msg["IN1.F3"], msg["IN1.F4"]) == ("BHYT", "BHXH", "Bảo hiểm xã hội Việt Nam")
    assert msg["IN1.F12"] == cov.valid_from.replace("-", "")  # type: ignore[union-attr]
    assert msg["IN1.F13"] == cov.valid_to.replace("-", "")
    assert (msg["IN1.F17"], msg["IN1.F36"]) == ("SEL", cov.card)


def test_without_coverage_no_insurance_segments() -> None:
    msg, _ = build(visit_of(UNINSURED, 1))
    assert [str(seg[0]) for seg in msg] == ["MSH", "EVN", "PID", "PV1"]
    assert msg["PID.F3.R1.C5"] == "NNVNM"


def test_the_sending_side_and_receiver_can_be_named() -> None:
    msg, _ = build(
        visit_of(UNINSURED, 1),
        sending_facility="BV Quận 3",
        receiving_application="HIS^X",
        receiving_facility="79014",
        control_id="ABC",
    )
    assert (msg["MSH.F4"], msg["MSH.F5"], msg["MSH.F6"], msg["MSH.F10"]) == (
        "BV Quận 3",
        "HIS^X",
        "79014",
        "ABC",
    )


def test_every_synthetic_visit_round_trips() -> None:
    for visit in population_visits(len(PEOPLE)):
        msg, text = build(visit)
        assert text.count("\r") == len(msg)
        assert f"{msg['PID.F5.R1.C1']} {msg['PID.F5.R1.C2']}" == visit.name
        assert msg["PID.F11.R1.C1"] == visit.address
        assert msg["PID.F7"] == visit.dob.replace("-", "")
        assert msg["PV1.F19.R1.C1"] == visit.key


HOSTILE = [
    "Nguyễn|Văn^An~Bình\\Chi&Dũng",
    "Lê\rThị\nHoa\r\nMai",
    "\x0bTrần\x1c\rVăn\x1c",
    "Phạm \\F\\ \\.br\\ \\X0D\\ Quốc",
    "MSH|^~\\&|EVIL\rPID|1",
    "Hồ " + "Ngọc Trâm " * 600,  # 6 000 characters
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_values_stay_data(hostile: str) -> None:
    base = visit_of(INSURED, 3)
    cov = base.coverage
    assert cov is not None
    visit = dataclasses.replace(
        base,
        name=hostile,
        address=hostile,
        cmnd="1|2^3",
        coverage=dataclasses.replace(cov, kcbbd="7~9&0"),
    )
    msg, text = build(visit)
    raw = (START + text.encode() + END)[1:-2]
    assert b"\x0b" not in raw and b"\x1c" not in raw and b"\n" not in raw
    assert [s.split("|", 1)[0] for s in text.split("\r")[:-1]] == ["MSH", "EVN", "PID", "PD1", "PV1", "IN1"]
    name = nfc(hostile).strip()
    family, given_names = msg["PID.F5.R1.C1"], msg["PID.F5.R1.C2"]
    assert (f"{family} {given_names}" if given_names else family) == name
    assert msg["PID.F11.R1.C1"] == nfc(hostile)
    assert msg["PID.F3.R2.C1"] == "1|2^3" and msg["PD1.F3.R1.C10"] == "7~9&0"
    assert msg["IN1.F36"] == cov.card and msg["MSH.F12"] == "2.5"


@settings(max_examples=300, deadline=None)
@given(name=st.text(min_size=1, max_size=80), address=st.text(max_size=80))
def test_any_text_round_trips(name: str, address: str) -> None:
    visit = dataclasses.replace(visit_of(UNINSURED, 1), name=name, address=address or None)
    msg, text = build(visit)
    assert text.count("\r") == 4
    family, given_names = get(msg, "PID.F5.R1.C1"), get(msg, "PID.F5.R1.C2")
    expect = nfc(name).strip()
    assert (f"{family} {given_names}" if given_names else family) == expect.encode(
        "utf-8", "replace"
    ).decode()
    if address:
        assert get(msg, "PID.F11.R1.C1") == nfc(address).encode("utf-8", "replace").decode()


def test_names_are_sent_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", "Nguyễn Thị Ánh")
    msg, text = build(dataclasses.replace(visit_of(UNINSURED, 1), name=decomposed))
    assert msg["PID.F5.R1.C1"] == "Nguyễn" and msg["PID.F5.R1.C2"] == "Thị Ánh"
    assert decomposed not in text and unicodedata.is_normalized("NFC", text)


def test_dates_sex_and_the_year_alone() -> None:
    visit = dataclasses.replace(visit_of(UNINSURED, 1), dob="1948", sex=None)
    msg, _ = build(visit)
    assert (msg["PID.F7"], msg["PID.F8"]) == ("1948", "U")


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"dob": "17/05/1990"}, "date of birth"),
        ({"dob": "1990-02-30"}, "date of birth is not a real date"),
        ({"arrived": datetime.datetime(2025, 6, 2, 7, 30)}, "arrival time has no time zone"),
        ({"cccd": None, "cmnd": None, "coverage": None}, "no patient identifier"),
        (
            {"coverage": Coverage("DN4797900000001", "000", valid_from="2025-13-01")},
            "start date is not a real",
        ),
    ],
)
def test_what_cannot_be_sent_is_refused_without_personal_data(change: dict[str, Any], what: str) -> None:
    visit = dataclasses.replace(visit_of(UNINSURED, 1), **change)
    with pytest.raises(ValueError, match=what) as caught:
        adt_a04(visit, now=NOW)
    assert UNINSURED.cccd not in str(caught.value) and "1990" not in str(caught.value)


def test_the_control_id_is_the_visits_own() -> None:
    a, b = visit_of(PEOPLE[0], 1), visit_of(PEOPLE[1], 2)
    ids = {message_control_id(visit_of(PEOPLE[0], seq, dev)) for seq in range(500) for dev in ("a", "b")}
    assert len(ids) == 500 * 2
    assert all(re.fullmatch(r"[A-Z2-7]{20}", i) for i in ids)
    assert message_control_id(a) == message_control_id(dataclasses.replace(a, name="X", coverage=None))
    assert message_control_id(a) != message_control_id(dataclasses.replace(a, seq=2))
    assert message_control_id(a) != message_control_id(b)


# --- the acknowledgment ------------------------------------------------------------------------


def ack_frame(code: str, control_id: str, *, err: str = "", text: str = "", err_text: str = "") -> bytes:
    segs = [
        "MSH|^~\\&|HIS|BV|CCCD-EDGE|79014|20250602073106+0700||ACK^A04^ACK|A1|P|2.5",
        f"MSA|{code}|{control_id}|{text}",
    ]
    if err or err_text:
        segs.append(f"ERR|||{err}^Error^HL70357|E||||{err_text}")
    return ("\r".join(segs) + "\r").encode()


@pytest.mark.parametrize(
    ("code", "err", "outcome"),
    [
        ("AA", "", None),
        ("CA", "", None),
        ("AE", "", HisRejectedError),
        ("AE", "101", HisRejectedError),
        ("AE", "206", HisUnavailableError),
        ("AE", "207", HisUnavailableError),
        ("AR", "", HisUnavailableError),
        ("AR", "207", HisUnavailableError),
        ("AR", "203", HisRejectedError),
        ("AR", "200", HisRejectedError),
        ("AR", "102", HisRejectedError),
        ("CE", "", HisUnavailableError),
        ("CR", "", HisRejectedError),
        ("ZZ", "", HisUnavailableError),
    ],
)
def test_ack_codes(code: str, err: str, outcome: type[Exception] | None) -> None:
    visit = visit_of(UNINSURED, 1)
    ack = parse_ack(ack_frame(code, "X1", err=err, err_text="the HIS says no"))
    assert (ack.code, ack.control_id, ack.error) == (code, "X1", err)
    if outcome is None:
        verdict(ack, visit)
        return
    with pytest.raises(outcome, match=f"{code}.*the HIS says no" if code != "ZZ" else "unknown .*'ZZ'"):
        verdict(ack, visit)


def test_ack_text_from_older_err_and_msa() -> None:
    frame = (
        b"MSH|^~\\&|HIS||||||ACK|1|P|2.4\rMSA|AE|X1|Patient locked\rERR|PID^1^5^101&Required field missing"
    )
    ack = parse_ack(frame)
    assert (ack.error, ack.text) == ("101", "Required field missing")
    ack = parse_ack(b"MSH|^~\\&|HIS||||||ACK|1|P|2.4\rMSA|AE|X1|Patient locked")
    assert (ack.error, ack.text) == ("", "Patient locked")


def test_the_his_text_is_redacted() -> None:
    visit = visit_of(INSURED, 1)
    cov = visit.coverage
    assert cov is not None
    born = visit.dob.replace("-", "")
    said = f"Bệnh nhân {visit.name.upper()} ({visit.cccd}, thẻ {cov.card}, sinh {born}) đã có\r\nhồ sơ"
    out = redact(said, visit)
    assert visit.name.upper() not in out and visit.name not in out
    assert str(visit.cccd) not in out and cov.card not in out and born not in out
    assert out.startswith("Bệnh nhân ***") and out.endswith("đã có hồ sơ") and "\n" not in out
    assert len(redact("x" * 1000, visit)) == 300


# --- the connector against scripted answers ---------------------------------------------------

Reply = Callable[[str], bytes | None]


@contextlib.asynccontextmanager
async def scripted(reply: Reply) -> AsyncIterator[tuple[int, list[int]]]:
    """A one-off MLLP listener: each frame's control ID → ``reply``, written back; the connection
    is closed after an answer that is not a whole frame, or when ``reply`` gives None. Yields the
    port and a list that grows by one per connection."""
    conns: list[int] = []
    tasks: list[asyncio.Task[Any]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conns.append(1)
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)
        try:
            while True:
                block = await reader.readuntil(END)
                answer = reply(hl7.parse(block[1:-2].decode())["MSH.F10"])
                if answer is None:
                    return
                writer.write(answer)
                await writer.drain()
                if answer and not answer.endswith(END):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], conns
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def framed(payload: bytes) -> bytes:
    return START + payload + END


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (lambda cid: framed(ack_frame("AA", "SOMEONE-ELSE")), "another message"),
        (lambda cid: b"HTTP/1.1 400 Bad Request\r\n\x1c\r", "not an MLLP frame"),
        (lambda cid: framed(b"\xff\xfe garbage"), "not an HL7 message"),
        (lambda cid: framed(b"MSH|^~\\&|HIS\rPID|1"), "no MSA"),
        (lambda cid: START + ack_frame("AA", cid)[:30], "ended inside the answer"),
        (lambda cid: START + b"x" * 70_000 + END, "longer than"),
        (lambda cid: None, "closed the connection without answering"),
    ],
)
def test_a_bad_answer_is_unavailable_and_drops_the_connection(reply: Reply, why: str) -> None:
    async def go() -> None:
        async with scripted(reply) as (port, conns):
            connector = Hl7v2Connector("127.0.0.1", port, timeout=2)
            for _ in range(2):
                with pytest.raises(HisUnavailableError, match=why):
                    await connector.register(visit_of(UNINSURED, 1))
            await connector.aclose()
            assert len(conns) == 2  # never reused after a bad answer

    asyncio.run(go())


def test_no_answer_times_out() -> None:
    async def go() -> None:
        async with scripted(lambda cid: b"") as (port, _):
            connector = Hl7v2Connector("127.0.0.1", port, timeout=0.3)
            loop = asyncio.get_running_loop()
            began = loop.time()
            with pytest.raises(HisUnavailableError, match=r"within 0\.3 s"):
                await connector.register(visit_of(UNINSURED, 1))
            assert loop.time() - began < 2
            await connector.aclose()

    asyncio.run(go())


def test_a_rejection_carries_the_his_text_without_personal_data() -> None:
    visit = visit_of(INSURED, 1)

    def reply(cid: str) -> bytes:
        said = f"Trùng hồ sơ: {visit.name} / {visit.cccd} đã đăng ký"
        return framed(ack_frame("AE", cid, err="205", err_text=said))

    async def go() -> None:
        async with scripted(reply) as (port, conns):
            connector = Hl7v2Connector("127.0.0.1", port, timeout=2)
            with pytest.raises(HisRejectedError) as caught:
                await connector.register(visit)
            assert str(caught.value) == "AE 205: Trùng hồ sơ: *** / *** đã đăng ký"
            await connector.aclose()
            assert len(conns) == 1

    asyncio.run(go())


# --- the connector against the fake HIS --------------------------------------------------------


@pytest.fixture
def his() -> Any:
    fake = Hl7His(seed=1).start()
    yield fake
    fake.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_the_connector_is_a_his_connector(his: Hl7His) -> None:
    connector: HisConnector = Hl7v2Connector(his.host, his.port, timeout=2)
    assert connector.name == "hl7v2"
    run(connector.aclose())


def test_registered_once_when_sent_twice_on_one_connection(his: Hl7His) -> None:
    visit = visit_of(INSURED, 5)

    async def go() -> list[str]:
        connector = Hl7v2Connector(his.host, his.port, timeout=2)
        refs = [await connector.register(visit), await connector.register(visit)]
        await connector.aclose()
        return refs

    assert run(go()) == [message_control_id(visit)] * 2
    assert his.count() == 1
    stored = his.find(visit.key)
    assert stored is not None and stored.control_id == message_control_id(visit)
    assert stored.identifiers["NNVNM"] == INSURED.cccd and stored.card == INSURED.card.number  # type: ignore[union-attr]
    assert his.counters()["duplicate"] == 1 and his.counters()["connections"] == 1


def test_the_his_acted_but_the_ack_was_lost_then_a_retry(his: Hl7His) -> None:
    visit = visit_of(INSURED, 6)

    async def go() -> str:
        connector = Hl7v2Connector(his.host, his.port, timeout=2)
        his.set_drop_before_ack(True)
        with pytest.raises(HisUnavailableError, match="without answering"):
            await connector.register(visit)
        assert his.count() == 1  # it did act
        his.set_drop_before_ack(False)
        ref = await connector.register(visit)
        await connector.aclose()
        return ref

    assert run(go()) == message_control_id(visit)
    assert his.count() == 1 and his.counters()["duplicate"] >= 1


def test_outage_then_recovery(his: Hl7His) -> None:
    first, second = population_visits(2)

    async def go() -> None:
        connector = Hl7v2Connector(his.host, his.port, timeout=2)
        await connector.register(first)
        his.set_outage(True)
        with pytest.raises(HisUnavailableError, match=r"cannot reach the HIS .*ConnectionRefusedError"):
            await connector.register(second)
        his.set_outage(False)
        await connector.register(second)
        await connector.aclose()

    run(go())
    assert his.count() == 2


def test_a_restarted_his_is_reconnected_without_a_failure(his: Hl7His) -> None:
    first, second = population_visits(2)

    async def go() -> None:
        connector = Hl7v2Connector(his.host, his.port, timeout=2)
        await connector.register(first)
        his.stop()
        his.start()  # the kept connection is dead now; the HIS listens again on the same port
        await connector.register(second)
        await connector.aclose()

    run(go())
    assert his.count() == 2 and his.counters()["connections"] == 2


def test_the_fake_rejects_content_and_the_text_comes_through(his: Hl7His) -> None:
    bad = dataclasses.replace(visit_of(UNINSURED, 9), cccd="07919000000")  # 11 digits

    async def go() -> None:
        connector = Hl7v2Connector(his.host, his.port, timeout=2)
        with pytest.raises(HisRejectedError) as caught:
            await connector.register(bad)
        assert str(caught.value) == "AE 102: a NNVNM identifier is not well formed"
        with pytest.raises(HisRejectedError, match="AE 101: the patient's family name is missing"):
            await connector.register(dataclasses.replace(visit_of(UNINSURED, 10), name="  "))
        await connector.aclose()

    run(go())
    assert his.count() == 0 and his.counters()["AE"] == 2


def test_injected_failures_are_unavailable(his: Hl7His) -> None:
    his.set_error_rate(1.0)

    async def go() -> None:
        connector = Hl7v2Connector(his.host, his.port, timeout=2)
        with pytest.raises(HisUnavailableError, match="AR 207"):
            await connector.register(visit_of(INSURED, 1))
        his.set_error_rate(0.0)
        await connector.register(visit_of(INSURED, 1))
        await connector.aclose()

    run(go())
    assert his.count() == 1


def test_a_slow_his_times_out_then_recovers(his: Hl7His) -> None:
    his.set_latency(1.0)

    async def go() -> None:
        connector = Hl7v2Connector(his.host, his.port, timeout=0.2)
        with pytest.raises(HisUnavailableError, match=r"within 0\.2 s"):
            await connector.register(visit_of(INSURED, 1))
        his.set_latency(0.0)
        connector.timeout = 5
        await connector.register(visit_of(INSURED, 2))
        await connector.aclose()

    run(go())
    assert his.count() >= 1 and his.find("79014/quay-1/2") is not None


def test_many_at_once_over_a_few_connections(his: Hl7His) -> None:
    batch = population_visits(40)

    async def go() -> list[str]:
        connector = Hl7v2Connector(his.host, his.port, timeout=5, connections=3)
        refs = await asyncio.gather(*(connector.register(v) for v in batch + batch[:10]))
        await connector.aclose()
        return list(refs)

    refs = run(go())
    assert refs[:40] == [message_control_id(v) for v in batch]
    assert his.count() == 40 and his.counters()["connections"] <= 3
    assert {r.visit_key for r in his.registrations()} == {v.key for v in batch}


def test_nothing_is_sent_without_an_identifier(his: Hl7His) -> None:
    nobody = dataclasses.replace(visit_of(UNINSURED, 1), cccd=None, cmnd=None, coverage=None)

    async def go() -> None:
        connector = Hl7v2Connector(his.host, his.port, timeout=2)
        with pytest.raises(HisRejectedError, match=r"not sent: .*no patient identifier"):
            await connector.register(nobody)
        await connector.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await connector.register(visit_of(UNINSURED, 1))

    run(go())
    assert his.counters().get("connections", 0) == 0


def test_no_personal_data_in_the_logs(his: Hl7His, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    visit = visit_of(INSURED, 3)

    async def go() -> None:
        connector = Hl7v2Connector(his.host, his.port, timeout=2)
        await connector.register(visit)
        his.set_drop_before_ack(True)
        with pytest.raises(HisUnavailableError):
            await connector.register(visit)
        await connector.aclose()

    run(go())
    logged = caplog.text
    assert message_control_id(visit) in logged
    for value in (visit.name, visit.cccd, visit.address, INSURED.name.split()[-1]):
        assert value and value not in logged


def test_parse_ack_of_the_fakes_answer() -> None:
    assert parse_ack(ack_frame("AA", "X")) == Ack("AA", "X", "", "")
