"""The fake HIS (sim/his.py) over real HTTP: httpx against a started FHIR server."""

import json
import logging
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome

from sim.his import MAX_BODY, FhirHis, parse_token

from .test_bhxh import cli

ROOT = Path(__file__).resolve().parents[2]
NID = "http://fhir.ehealth.gov.vn/core/sid/national_id"
CARD = "http://fhir.ehealth.gov.vn/core/sid/insurance_number"
JSON_TYPE = {"Content-Type": "application/fhir+json"}
NAME = "Trần Thị Bình"


def _patient(cccd: str = "079190000001", name: str = NAME, **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": NID, "value": cccd}],
        "name": [{"text": name, "family": name.split(maxsplit=1)[0]}],
        "gender": "female",
        "birthDate": "1990-05-17",
        **more,
    }


def _coverage(ref: str, card: str = "DN4797900000001") -> dict[str, Any]:
    return {
        "resourceType": "Coverage",
        "identifier": [{"system": CARD, "value": card}],
        "status": "active",
        "beneficiary": {"reference": ref},
        "payor": [{"display": "Bảo hiểm xã hội Việt Nam"}],
    }


@pytest.fixture
def his() -> Iterator[FhirHis]:
    with FhirHis() as server:
        yield server


@pytest.fixture
def client(his: FhirHis) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=his.url, timeout=5) as http:
        yield http


def send(client: httpx.Client, method: str, url: str, body: Any = None, **kw: Any) -> httpx.Response:
    content = (
        body if isinstance(body, bytes) or body is None else json.dumps(body, ensure_ascii=False).encode()
    )
    headers = {**JSON_TYPE, **kw.pop("headers", {})}
    return client.request(method, url, content=content, headers=headers, **kw)


def problem(response: httpx.Response, status: int, code: str | None = None) -> str:
    """The diagnostics of an OperationOutcome answer, checked to be one."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    OperationOutcome.model_validate(body)
    issue = body["issue"][0]
    assert issue["severity"] == "error"
    if code is not None:
        assert issue["code"] == code, issue
    text = str(issue["diagnostics"])
    assert "Traceback" not in response.text and 'File "' not in response.text
    return text


# --- the interactions ---------------------------------------------------------------------------


def test_metadata(client: httpx.Client) -> None:
    response = client.get("/metadata")
    assert response.status_code == 200
    CapabilityStatement.model_validate(response.json())


def test_create_read_vread(his: FhirHis, client: httpx.Client) -> None:
    response = send(client, "POST", "/Patient", _patient(id="mine"))
    assert response.status_code == 201
    body = response.json()
    rid = body["id"]
    assert rid != "mine"  # the server assigns ids
    assert body["meta"]["versionId"] == "1" and body["meta"]["lastUpdated"]
    assert response.headers["location"] == f"{his.url}/Patient/{rid}/_history/1"
    assert response.headers["etag"] == 'W/"1"' and response.headers["last-modified"].endswith("GMT")
    read = client.get(f"/Patient/{rid}")
    assert read.status_code == 200 and read.json() == body and read.headers["etag"] == 'W/"1"'
    assert client.get(f"/Patient/{rid}/_history/1").json() == body
    problem(client.get(f"/Patient/{rid}/_history/2"), 404, "not-found")
    problem(client.get("/Patient/404"), 404, "not-found")
    assert his.count("Patient") == 1 and his.read("Patient", rid) == body


def test_conditional_update_creates_updates_and_refuses_several(his: FhirHis, client: httpx.Client) -> None:
    url = f"/Patient?identifier={NID}|079190000001"
    created = send(client, "PUT", url, _patient())
    assert created.status_code == 201
    rid = created.json()["id"]
    again = send(client, "PUT", url, _patient())
    assert again.status_code == 200 and again.json()["id"] == rid
    assert again.json()["meta"]["versionId"] == "1"  # same content: no new version
    moved = send(client, "PUT", url, _patient(address=[{"text": "Số 2 đường Hoa Sen"}]))
    assert moved.status_code == 200 and moved.json()["meta"]["versionId"] == "2"
    assert moved.headers["location"].endswith(f"/Patient/{rid}/_history/2")
    assert his.count("Patient") == 1
    problem(send(client, "PUT", url, _patient(id="other")), 400, "invalid")  # not the match's id
    assert send(client, "POST", "/Patient", _patient()).status_code == 201  # a duplicate, unconditionally
    text = problem(send(client, "PUT", url, _patient()), 412, "multiple-matches")
    assert "2 Patient" in text
    assert his.count("Patient") == 2


def test_conditional_update_with_an_id(his: FhirHis, client: httpx.Client) -> None:
    url = f"/Patient?identifier={NID}|079190000002"
    response = send(client, "PUT", url, _patient("079190000002", id="p-2"))
    assert response.status_code == 201 and response.json()["id"] == "p-2"
    send(client, "POST", "/Patient", _patient("079190000003"))
    taken = send(client, "PUT", f"/Patient?identifier={NID}|079190000004", _patient("079190000004", id="p-2"))
    problem(taken, 400, "invalid")
    problem(send(client, "PUT", "/Patient", _patient()), 400, "invalid")  # no criteria
    assert his.count("Patient") == 2


def test_conditional_create(his: FhirHis, client: httpx.Client) -> None:
    condition = {"If-None-Exist": f"identifier={NID}|079190000001"}
    first = send(client, "POST", "/Patient", _patient(), headers=condition)
    assert first.status_code == 201
    second = send(client, "POST", "/Patient", _patient(name="Trần Thị Bích"), headers=condition)
    assert second.status_code == 200 and second.json() == first.json()  # unchanged
    send(client, "POST", "/Patient", _patient())
    problem(send(client, "POST", "/Patient", _patient(), headers=condition), 412, "multiple-matches")
    assert his.count("Patient") == 2


def test_update(his: FhirHis, client: httpx.Client) -> None:
    rid = send(client, "POST", "/Patient", _patient()).json()["id"]
    updated = send(client, "PUT", f"/Patient/{rid}", _patient(id=rid, gender="male"))
    assert updated.status_code == 200 and updated.json()["meta"]["versionId"] == "2"
    problem(send(client, "PUT", f"/Patient/{rid}", _patient(id="x")), 400, "invalid")
    problem(send(client, "PUT", f"/Patient/{rid}", _patient()), 400, "invalid")  # no id
    assert send(client, "PUT", "/Patient/new-1", _patient(id="new-1")).status_code == 201
    problem(send(client, "PUT", "/Patient/bad_id!", _patient(id="bad_id!")), 400)
    assert his.count("Patient") == 2


def test_search(his: FhirHis, client: httpx.Client) -> None:
    a = send(client, "POST", "/Patient", _patient("079190000001")).json()["id"]
    b = send(client, "POST", "/Patient", _patient("079190000002")).json()["id"]
    odd = _patient("x,y|z", identifier=[{"value": "x,y|z"}, {"system": "urn:other", "value": "079190000001"}])
    c = send(client, "POST", "/Patient", odd).json()["id"]

    def ids(query: str) -> list[str]:
        response = client.get(f"/Patient?{query}")
        assert response.status_code == 200, response.text
        bundle = response.json()
        Bundle.model_validate(bundle)
        assert bundle["type"] == "searchset"
        return [e["resource"]["id"] for e in bundle.get("entry", [])]

    assert ids(f"identifier={NID}|079190000001") == [a]
    assert ids("identifier=079190000001") == [a, c]  # any system
    assert ids(f"identifier={NID}|") == [a, b]  # any value
    assert ids("identifier=|x\\,y\\|z") == [c]  # no system, escaped value
    assert ids(f"identifier={NID}|079190000001,{NID}|079190000002") == [a, b]  # or
    assert ids(f"identifier=079190000001&identifier={NID}|") == [a]  # and
    assert ids("identifier=nobody") == []
    assert ids("") == [a, b, c]
    limited = client.get("/Patient", params={"identifier": "079190000001", "_count": "1"}).json()
    assert limited["total"] == 2 and len(limited["entry"]) == 1
    problem(client.get("/Patient?name=Tr%E1%BA%A7n"), 400, "not-supported")
    problem(client.get("/Patient?identifier=a|b|c"), 400, "invalid")
    problem(client.get("/Patient?identifier="), 400, "invalid")
    problem(client.get("/Patient?identifier=%ff"), 400, "invalid")
    assert client.get("/Patient?_format=xml").status_code == 406


def test_parse_token() -> None:
    assert parse_token("s|v") == [("s", "v")]
    assert parse_token("v") == [(None, "v")]
    assert parse_token("|v") == [("", "v")]
    assert parse_token("s|") == [("s", None)]
    assert parse_token("a\\|b|c\\,d,e") == [("a|b", "c,d"), (None, "e")]


def test_references_must_resolve(his: FhirHis, client: httpx.Client) -> None:
    rid = send(client, "POST", "/Patient", _patient()).json()["id"]
    assert send(client, "POST", "/Coverage", _coverage(f"Patient/{rid}")).status_code == 201
    assert send(client, "POST", "/Coverage", _coverage(f"{his.url}/Patient/{rid}", "DN1")).status_code == 201
    text = problem(send(client, "POST", "/Coverage", _coverage("Patient/999")), 422, "processing")
    assert "Patient/999" in text
    logical = _coverage(f"Patient/{rid}")
    logical["beneficiary"] = {"identifier": {"system": NID, "value": "079190000001"}}
    assert "beneficiary" in problem(send(client, "POST", "/Coverage", logical), 422)
    encounter = {
        "resourceType": "Encounter",
        "status": "arrived",
        "class": {"code": "AMB"},
        "subject": {"reference": f"Patient/{rid}"},
        "serviceProvider": {"reference": "Organization/1"},
    }
    assert "Organization/1" in problem(send(client, "POST", "/Encounter", encounter), 422)
    encounter["serviceProvider"] = {"reference": "https://elsewhere.example/Organization/1"}
    assert send(client, "POST", "/Encounter", encounter).status_code == 201
    encounter["subject"] = {"reference": "Encounter/1"}
    problem(send(client, "POST", "/Encounter", encounter), 422)
    assert his.count("Coverage") == 2 and len(his.encounters()) == 1


INVALID: list[tuple[str, bytes, int, str]] = [
    ("not UTF-8", b'{"resourceType": "Patient", "name": [{"text": "Tr\xe1n"}]}', 400, "UTF-8"),
    ("not JSON", b'{"resourceType": "Patient",', 400, "JSON"),
    ("torn", json.dumps(_patient()).encode()[:-7], 400, "JSON"),
    ("duplicate key", b'{"resourceType": "Patient", "gender": "male", "gender": "female"}', 400, "duplicate"),
    ("NaN", b'{"resourceType": "Patient", "multipleBirthInteger": NaN}', 400, "JSON"),
    ("deep", b'{"resourceType": "Patient", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, ""),
    ("an array", b"[1, 2]", 400, "object"),
    ("another type", json.dumps({**_patient(), "resourceType": "Encounter"}).encode(), 400, "Encounter"),
    ("no type", json.dumps({"gender": "male"}).encode(), 400, "resourceType"),
    ("null", json.dumps({**_patient(), "gender": None}).encode(), 400, "null"),
    ("empty", json.dumps({**_patient(), "birthDate": ""}).encode(), 400, "empty"),
    ("control", json.dumps(_patient(name="Trần\x07 Bình")).encode(), 400, "control"),
    ("bad date", json.dumps({**_patient(), "birthDate": "1990-02-30"}).encode(), 400, "Patient.birthDate"),
    ("bad code", json.dumps({**_patient(), "gender": "nữ"}).encode(), 400, "Patient.gender"),
    ("unknown element", json.dumps({**_patient(), "hoTen": NAME}).encode(), 400, "Patient.hoTen"),
    ("empty body", b"", 400, "body"),
]


@pytest.mark.parametrize(("case", "body", "status", "said"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_input_gets_an_operation_outcome(
    his: FhirHis, client: httpx.Client, case: str, body: bytes, status: int, said: str
) -> None:
    text = problem(send(client, "POST", "/Patient", body), status)
    assert said in text, text
    assert NAME not in text and "Trần" not in text and "nữ" not in text  # what was sent is not echoed
    assert his.count("Patient") == 0
    assert client.get("/metadata").status_code == 200  # and the server goes on


def test_http_level_problems(his: FhirHis, client: httpx.Client) -> None:
    problem(send(client, "POST", "/Patient", b"x" * (MAX_BODY + 1)), 413, "too-long")
    problem(
        send(client, "POST", "/Patient", json.dumps(_patient()), headers={"Content-Type": "text/xml"}), 415
    )
    latin = {"Content-Type": "application/fhir+json; charset=iso-8859-1"}
    problem(send(client, "POST", "/Patient", json.dumps(_patient()), headers=latin), 415)
    chunks = (part for part in (json.dumps(_patient()).encode(),))
    problem(client.post("/Patient", content=chunks, headers=JSON_TYPE), 411)
    problem(client.get("/Organization/1"), 404, "not-supported")
    problem(client.get(his.url.replace("/fhir", "/other")), 404)
    deleted = client.delete("/Patient/1")
    problem(deleted, 405)
    assert deleted.headers["allow"] == "GET, PUT"
    head = client.head("/metadata")
    assert head.status_code == 405 and head.content == b""
    assert his.count("Patient") == 0


def _raw(his: FhirHis, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", his.port), timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_broken_http_gets_an_operation_outcome(his: FhirHis) -> None:
    for data in (b"\x16\x03\x01 garbage\r\n\r\n", b"GET /fhir/" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n"):
        answer = _raw(his, data)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert re.match(rb"HTTP/1\.[01] 4\d\d", head), head
        assert json.loads(body)["resourceType"] == "OperationOutcome"
    mismatch = b"POST /fhir/Patient HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef"
    assert b" 400 " in _raw(his, mismatch).split(b"\r\n")[0]


# --- faults -------------------------------------------------------------------------------------


def test_outage_503_and_refused(his: FhirHis, client: httpx.Client) -> None:
    rid = send(client, "POST", "/Patient", _patient()).json()["id"]
    his.set_outage("503")
    response = client.get(f"/Patient/{rid}")
    problem(response, 503, "transient")
    assert response.headers["retry-after"] == "1"
    his.set_outage(True)
    assert his.outage == "refuse"
    with pytest.raises(httpx.ConnectError):
        client.get(f"/Patient/{rid}")
    with pytest.raises(httpx.ConnectError), httpx.Client(base_url=his.url) as fresh:
        fresh.get("/metadata")
    his.set_outage(False)
    assert client.get(f"/Patient/{rid}").status_code == 200  # the same port, the same data
    assert his.requests("GET", "Patient", 503) == 1


def test_restart_keeps_the_port_and_the_store(his: FhirHis, client: httpx.Client) -> None:
    port = his.port
    rid = send(client, "POST", "/Patient", _patient()).json()["id"]
    his.stop()
    with pytest.raises(httpx.ConnectError):
        client.get("/metadata")
    his.start()
    assert his.port == port and client.get(f"/Patient/{rid}").status_code == 200


def test_a_file_store_outlives_the_server(tmp_path: Path) -> None:
    db = tmp_path / "his.db"
    with FhirHis(db=db) as first, httpx.Client(base_url=first.url) as client:
        send(client, "PUT", f"/Patient?identifier={NID}|079190000001", _patient())
    with FhirHis(db=str(db)) as second, httpx.Client(base_url=second.url) as client:
        assert second.count("Patient") == 1
        again = send(client, "PUT", f"/Patient?identifier={NID}|079190000001", _patient())
        assert again.status_code == 200
        assert send(client, "POST", "/Patient", _patient("079190000009")).json()["id"] != again.json()["id"]


def test_injected_errors(his: FhirHis, client: httpx.Client) -> None:
    his.set_error_rate(1.0)
    problem(send(client, "POST", "/Patient", _patient()), 500, "exception")
    assert his.count("Patient") == 0
    his.set_error_rate(1.0, after=True)
    problem(send(client, "PUT", f"/Patient?identifier={NID}|079190000001", _patient()), 500, "exception")
    assert his.count("Patient") == 1  # done, and the answer lost
    his.set_error_rate(0)
    assert send(client, "PUT", f"/Patient?identifier={NID}|079190000001", _patient()).status_code == 200
    with pytest.raises(ValueError, match="fraction"):
        his.set_error_rate(1.5)


def test_a_business_rule_rejects(his: FhirHis, client: httpx.Client) -> None:
    his.set_reject("Patient", "Thiếu số điện thoại liên hệ")
    assert (
        problem(send(client, "POST", "/Patient", _patient()), 422, "business-rule")
        == "Thiếu số điện thoại liên hệ"
    )
    his.set_reject("Patient", None)
    assert send(client, "POST", "/Patient", _patient()).status_code == 201
    with pytest.raises(ValueError, match="Patient"):
        his.set_reject("Organization")


def test_latency(his: FhirHis, client: httpx.Client) -> None:
    his.set_latency(0.2, 0.25)
    assert his.latency == (0.2, 0.25)
    start = time.monotonic()
    client.get("/metadata")
    assert time.monotonic() - start >= 0.2
    with pytest.raises(ValueError):
        his.set_latency(2, 1)


def test_minimal_answers(his: FhirHis, client: httpx.Client) -> None:
    response = send(client, "POST", "/Patient", _patient(), headers={"Prefer": "return=minimal"})
    assert (
        response.status_code == 201
        and response.content == b""
        and "/Patient/" in response.headers["location"]
    )
    with FhirHis(minimal=True) as quiet, httpx.Client(base_url=quiet.url) as other:
        assert send(other, "POST", "/Patient", _patient()).content == b""
        full = send(other, "POST", "/Patient", _patient(), headers={"Prefer": "return=representation"})
        assert full.json()["resourceType"] == "Patient"


def test_concurrent_conditional_updates_make_one(his: FhirHis) -> None:
    statuses: list[int] = []

    def put() -> None:
        with httpx.Client(base_url=his.url, timeout=10) as own:
            statuses.append(
                send(own, "PUT", f"/Patient?identifier={NID}|079190000001", _patient()).status_code
            )

    threads = [threading.Thread(target=put) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] * 15 + [201]
    assert his.count("Patient") == 1


def test_counters_and_finders(his: FhirHis, client: httpx.Client) -> None:
    rid = send(client, "PUT", f"/Patient?identifier={NID}|079190000001", _patient()).json()["id"]
    send(client, "PUT", f"/Coverage?identifier={CARD}|DN4797900000001", _coverage(f"Patient/{rid}"))
    client.get("/Nothing")
    assert his.requests("PUT") == 2 and his.requests(kind="Coverage", status=201) == 1
    assert his.counters()[("GET", "other", 404)] == 1
    assert [p["id"] for p in his.find("Patient", NID, "079190000001")] == [rid]
    assert [c["beneficiary"] for c in his.find("Coverage", None, "DN4797900000001")] == [
        {"reference": f"Patient/{rid}"}
    ]
    assert his.find("Patient", CARD, "079190000001") == []
    assert his.resources("Coverage")[0]["status"] == "active"


def test_logs_carry_no_query_string_nor_body(
    his: FhirHis, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cccd.sim.his")
    send(client, "PUT", f"/Patient?identifier={NID}|079190000001", _patient())
    send(client, "POST", "/Patient", b"\xff")
    assert "PUT /fhir/Patient -> 201" in caplog.text
    for secret in ("079190000001", NAME):
        assert secret not in caplog.text


def test_closed_is_closed() -> None:
    his = FhirHis()
    his.close()
    with pytest.raises(RuntimeError, match="closed"):
        his.start()
    with pytest.raises(ValueError):
        FhirHis(outage="sometimes")


# --- the command line ---------------------------------------------------------------------------


def test_cli_help_and_bad_options() -> None:
    assert cli("sim", "his", "--help").returncode == 0
    for bad in (["--latency", "3-1"], ["--port", "x"], ["--port", "70000"]):
        out = cli("sim", "his", *bad)
        assert out.returncode == 64, out.stderr


def test_cli_serves_until_ctrl_c(tmp_path: Path) -> None:
    db = tmp_path / "his.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "sim", "his", "--db", str(db), "--latency", "0-0.01"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/fhir", first)
        assert url, first
        with httpx.Client(base_url=url[0]) as client:
            assert (
                send(client, "PUT", f"/Patient?identifier={NID}|079190000001", _patient()).status_code == 201
            )
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    with FhirHis(db=db) as reopened:
        assert reopened.count("Patient") == 1
