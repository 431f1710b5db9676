"""The fake HL7 v2 HIS (sim/hl7his.py) over real TCP: plain sockets send it frames, good and bad."""

import dataclasses
import logging
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hl7
import pytest

from collector.forward.hl7v2 import adt_a04, message_control_id
from sim import citizens
from sim.hl7his import Hl7His, banner

from .his_visits import ARRIVED, TODAY, visit_of

START, END = b"\x0b", b"\x1c\r"
PEOPLE = citizens.population(60, 5, TODAY)
INSURED = next(p for p in PEOPLE if p.insurance == "valid")


class Client:
    """One MLLP connection to the fake, with blocking reads bounded by a timeout."""

    def __init__(self, his: Hl7His, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((his.host, his.port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def frame(self) -> bytes | None:
        """The next frame's content; None when the fake closed the connection."""
        while END not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self.buf += chunk
        block, _, self.buf = self.buf.partition(END)
        assert block.startswith(START)
        return block[1:]

    def ack(self, message: str | bytes) -> Any:
        self.send(START + (message.encode() if isinstance(message, str) else message) + END)
        frame = self.frame()
        assert frame is not None, "the fake closed the connection"
        return hl7.parse(frame.decode())

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def his() -> Iterator[Hl7His]:
    fake = Hl7His(seed=3).start()
    yield fake
    fake.close()


@pytest.fixture
def client(his: Hl7His) -> Iterator[Client]:
    c = Client(his)
    yield c
    c.close()


def message(seq: int = 1, person: citizens.Citizen = INSURED, **kw: Any) -> str:
    return adt_a04(visit_of(person, seq), now=ARRIVED, **kw)


def with_field(text: str, segment: str, number: int, value: str | None) -> str:
    """``text`` with field ``number`` of ``segment`` set (None: the segment removed)."""
    out = []
    for seg in text.split("\r")[:-1]:
        fields = seg.split("|")
        if fields[0] == segment:
            if value is None:
                continue
            index = number - 1 if segment == "MSH" else number
            fields += [""] * (index + 1 - len(fields))
            fields[index] = value
        out.append("|".join(fields))
    return "\r".join(out) + "\r"


def get(msg: Any, path: str) -> str:
    try:
        return str(msg[path])
    except (IndexError, KeyError):
        return ""


# --- what it takes -----------------------------------------------------------------------------


def test_a_registration_is_stored_and_acknowledged(his: Hl7His, client: Client) -> None:
    visit = visit_of(INSURED, 1)
    ack = client.ack(message())
    assert (ack["MSH.F9.R1.C1"], ack["MSH.F9.R1.C2"], ack["MSH.F12"], ack["MSH.F3"]) == (
        "ACK",
        "A04",
        "2.5",
        "HIS",
    )
    assert (ack["MSH.F5"], ack["MSH.F6"]) == ("CCCD-EDGE", "79014")
    assert (ack["MSA.F1"], ack["MSA.F2"]) == ("AA", message_control_id(visit))
    assert len(ack["MSH.F10"]) <= 20 and get(ack, "ERR.F3") == ""
    reg = his.find(visit.key)
    assert reg is not None and his.count() == 1 and his.registrations() == [reg]
    assert f"{reg.family} {reg.given}" == INSURED.name and reg.sex == INSURED.sex
    assert reg.identifiers["NNVNM"] == INSURED.cccd and reg.address == INSURED.address
    assert INSURED.card is not None and reg.card == INSURED.card.number and reg.kcbbd == INSURED.card.kcbbd
    assert reg.location == "quay-1" and reg.plan == "BHYT" and reg.message.startswith("MSH|")
    assert his.counters() == {"connections": 1, "AA": 1}


def test_the_same_control_id_is_stored_once(his: Hl7His, client: Client) -> None:
    text = message()
    assert [client.ack(text)["MSA.F1"] for _ in range(3)] == ["AA"] * 3
    assert his.count() == 1 and his.counters()["duplicate"] == 2
    # the fake de-duplicates on MSH-10 only: the same visit under another ID is another registration
    assert client.ack(message(control_id="OTHER-ID"))["MSA.F1"] == "AA"
    assert his.count() == 2 and len({r.visit_key for r in his.registrations()}) == 1


def test_the_visit_without_insurance(his: Hl7His, client: Client) -> None:
    person = next(p for p in PEOPLE if p.insurance == "none")
    assert client.ack(message(2, person))["MSA.F1"] == "AA"
    reg = his.find(visit_of(person, 2).key)
    assert reg is not None and (reg.plan, reg.card, reg.kcbbd) == ("", "", "")


@pytest.mark.parametrize(
    ("segment", "number", "value", "code", "error", "where"),
    [
        ("MSH", 9, "ORU^R01^ORU_R01", "AR", "200", "MSH^1^9"),
        ("MSH", 9, "ADT^A08^ADT_A01", "AR", "201", "MSH^1^9"),
        ("MSH", 11, "X", "AR", "202", "MSH^1^11"),
        ("MSH", 12, "2.3", "AR", "203", "MSH^1^12"),
        ("MSH", 10, "", "AR", "101", "MSH^1^10"),
        ("MSH", 10, "X" * 21, "AR", "101", "MSH^1^10"),
        ("PID", 0, None, "AE", "100", "PID"),
        ("PV1", 0, None, "AE", "100", "PV1"),
        ("PID", 3, "", "AE", "101", "PID^1^3"),
        ("PID", 3, "12345^^^^NNVNM", "AE", "102", "PID^1^3^1"),
        ("PID", 3, "079190000001^^^^NNVNM~ABC^^^^HC", "AE", "102", "PID^1^3^2"),
        ("PID", 5, "^Văn An", "AE", "101", "PID^1^5"),
        ("PID", 7, "19903001", "AE", "102", "PID^1^7"),
        ("PID", 7, "", "AE", "102", "PID^1^7"),
        ("PID", 8, "X", "AE", "103", "PID^1^8"),
        ("PV1", 2, "Z", "AE", "103", "PV1^1^2"),
        ("PV1", 19, "", "AE", "101", "PV1^1^19"),
        ("IN1", 2, "", "AE", "101", "IN1^1^2"),
        ("IN1", 3, "", "AE", "101", "IN1^1^3"),
        ("IN1", 13, "2025-12-31", "AE", "102", "IN1^1^13"),
    ],
)
def test_what_it_refuses(
    his: Hl7His,
    client: Client,
    segment: str,
    number: int,
    value: str | None,
    code: str,
    error: str,
    where: str,
) -> None:
    text = with_field(message(), segment, number, value)
    ack = client.ack(text)
    assert (ack["MSA.F1"], ack["ERR.F3.R1.C1"], ack["ERR.F3.R1.C3"], ack["ERR.F4"]) == (
        code,
        error,
        "HL70357",
        "E",
    )
    assert str(ack.segment("ERR")(2)) == where
    said = ack["ERR.F8"]
    assert said and said == ack["MSA.F3"] and ack["ERR.F3.R1.C2"]
    for personal in (INSURED.name, INSURED.cccd, INSURED.address, INSURED.name.split()[0]):
        assert personal not in said
    assert his.count() == 0 and his.counters()[code] == 1


def test_a_valid_message_after_a_refused_one_on_the_same_connection(his: Hl7His, client: Client) -> None:
    assert client.ack(with_field(message(), "PID", 8, "X"))["MSA.F1"] == "AE"
    assert client.ack(message())["MSA.F1"] == "AA"
    assert his.count() == 1


# --- framing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"hello", b"\xff\xfe\x00MSH|", b"", b"PID|1||x", b"MSH", b"BHS|^~\\&|x"])
def test_a_frame_that_is_not_hl7_gets_a_reject(his: Hl7His, client: Client, content: bytes) -> None:
    ack = client.ack(content)
    assert (ack["MSA.F1"], get(ack, "MSA.F2"), ack["ERR.F3.R1.C1"]) == ("AR", "", "100")
    assert client.ack(message())["MSA.F1"] == "AA"  # the connection goes on
    assert his.counters()["unparsable"] == 1 and his.count() == 1


def test_bytes_outside_frames_are_skipped(his: Hl7His, client: Client) -> None:
    client.send(b"GET / HTTP/1.1\r\n\r\n" + END + b"\x00\x01")
    assert client.ack(b"junk" + START + message().encode())["MSA.F1"] == "AA"
    assert his.counters()["garbage"] == 1 and his.count() == 1


def test_frames_in_one_packet_and_one_frame_in_many(his: Hl7His, client: Client) -> None:
    a, b = message(1), message(2)
    client.send(START + a.encode() + END + START + b.encode() + END)
    first, second = client.frame(), client.frame()
    assert first is not None and second is not None
    assert [hl7.parse(f.decode())["MSA.F2"] for f in (first, second)] == [
        message_control_id(visit_of(INSURED, n)) for n in (1, 2)
    ]
    data = START + message(3).encode() + END
    for i in range(0, len(data), 7):
        client.send(data[i : i + 7])
        time.sleep(0.001)
    reply = client.frame()
    assert reply is not None and his.count() == 3


def test_a_torn_frame_is_counted_and_closed(his: Hl7His) -> None:
    c = Client(his)
    c.send(START + message().encode()[:100])
    c.sock.shutdown(socket.SHUT_WR)
    assert c.frame() is None
    c.close()
    _wait(lambda: his.counters().get("torn") == 1)
    c = Client(his)
    assert c.ack(message())["MSA.F1"] == "AA"
    c.close()
    assert his.count() == 1


def test_a_new_start_inside_a_frame_tears_it(his: Hl7His, client: Client) -> None:
    ack = client.ack(message(1).encode()[:80] + START + message(2).encode())
    assert ack["MSA.F2"] == message_control_id(visit_of(INSURED, 2))
    assert his.counters()["torn"] == 1 and his.count() == 1


def test_an_oversized_frame_closes_the_connection() -> None:
    with Hl7His(max_frame=4096) as his:
        c = Client(his)
        c.send(START + b"MSH|" + b"x" * 10_000)
        assert c.frame() is None
        c.close()
        c = Client(his)
        c.send(b"y" * 10_000)  # no start byte at all
        assert c.frame() is None
        c.close()
        assert his.counters()["oversized"] == 1 and his.counters()["garbage"] == 1
        c = Client(his)
        assert c.ack(message())["MSA.F1"] == "AA"
        c.close()


def test_random_bytes_never_break_it(his: Hl7His) -> None:
    rng = random.Random(9)
    good = START + message().encode() + END
    for _ in range(40):
        c = Client(his, timeout=2)
        noise = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        pieces = [noise, good[: rng.randrange(len(good))], START + noise + END]
        c.send(b"".join(rng.sample(pieces, len(pieces))))
        c.sock.shutdown(socket.SHUT_WR)
        while c.frame() is not None:
            pass
        c.close()
    c = Client(his)
    assert c.ack(message(9))["MSA.F1"] == "AA"
    c.close()


# --- faults -------------------------------------------------------------------------------------


def _wait(condition: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_outage_refuses_and_resets_then_the_same_port_serves(his: Hl7His) -> None:
    port = his.port
    c = Client(his)
    his.set_outage(True)
    assert c.frame() is None
    c.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((his.host, port), timeout=2)
    his.set_outage(False)
    c = Client(his)
    assert his.port == port and c.ack(message())["MSA.F1"] == "AA"
    c.close()


def test_an_outage_at_start_still_gives_a_port() -> None:
    his = Hl7His(outage=True).start()
    try:
        assert his.port > 0
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((his.host, his.port), timeout=2)
        his.set_outage(False)
        c = Client(his)
        assert c.ack(message())["MSA.F1"] == "AA"
        c.close()
    finally:
        his.close()


def test_drop_before_ack_acts_and_never_answers(his: Hl7His, client: Client) -> None:
    his.set_drop_before_ack(True)
    client.send(START + message().encode() + END)
    assert client.frame() is None
    assert his.count() == 1 and his.counters()["dropped"] == 1


def test_injected_errors_are_transient_rejects(his: Hl7His, client: Client) -> None:
    his.set_error_rate(1.0)
    ack = client.ack(message())
    assert (ack["MSA.F1"], ack["ERR.F3.R1.C1"]) == ("AR", "207")
    assert his.count() == 0 and his.counters()["injected"] == 1


def test_latency_and_an_outage_during_it(his: Hl7His, client: Client) -> None:
    his.set_latency(0.3)
    began = time.monotonic()
    assert client.ack(message(1))["MSA.F1"] == "AA"
    assert time.monotonic() - began >= 0.3
    his.set_latency(5.0)
    client.send(START + message(2).encode() + END)
    time.sleep(0.2)
    his.set_outage(True)
    assert client.frame() is None
    assert his.count() == 1 and his.counters()["lost"] == 1


def test_restart_keeps_port_and_registrations(his: Hl7His) -> None:
    c = Client(his)
    c.ack(message())
    c.close()
    port = his.port
    his.stop()
    his.start()
    c = Client(his)
    assert his.port == port and c.ack(message())["MSA.F1"] == "AA"
    c.close()
    assert his.count() == 1 and his.counters()["duplicate"] == 1


def test_a_database_file_outlives_the_fake(tmp_path: Path) -> None:
    path = tmp_path / "his.db"
    with Hl7His(path) as first:
        c = Client(first)
        c.ack(message())
        c.close()
    first.close()
    second = Hl7His(path).start()
    try:
        c = Client(second)
        assert c.ack(message())["MSA.F1"] == "AA"
        c.close()
        assert second.count() == 1 and second.counters()["duplicate"] == 1
    finally:
        second.close()


def test_settings_are_checked() -> None:
    his = Hl7His()
    with pytest.raises(ValueError, match="latency"):
        his.set_latency(2, 1)
    with pytest.raises(ValueError, match="error_rate"):
        his.set_error_rate(1.5)
    with pytest.raises(ValueError, match="max_frame"):
        Hl7His(max_frame=10)
    his.close()


def test_banner_and_logs(his: Hl7His, client: Client, caplog: pytest.LogCaptureFixture) -> None:
    assert f"{his.host}:{his.port}" in banner(his)
    caplog.set_level(logging.DEBUG, logger="cccd.sim.hl7his")
    client.ack(message())
    client.ack(with_field(message(2), "PID", 8, "X"))
    assert message_control_id(visit_of(INSURED, 1)) in caplog.text
    for personal in (INSURED.name, INSURED.cccd, INSURED.address):
        assert personal not in caplog.text


def test_a_hostile_name_is_stored_as_sent(his: Hl7His, client: Client) -> None:
    visit = dataclasses.replace(visit_of(INSURED, 4), name="Lê|Thị\r\x0b\x1cHoa ^~\\&")
    assert client.ack(adt_a04(visit, now=ARRIVED))["MSA.F1"] == "AA"
    reg = his.find(visit.key)
    assert reg is not None and f"{reg.family} {reg.given}" == visit.name
