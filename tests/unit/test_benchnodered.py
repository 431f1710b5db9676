"""`cccd-edge bench nodered` without Node-RED: the flow file's structure, the settings it runs
with, the plain reads it is offered, and the figures' arithmetic. The real run is
tests/integration/test_bench_nodered.py (skipped when Node-RED is not installed)."""

import json
import math
from pathlib import Path

from cccd import envelope, keys, schema
from sim.hall import Truth
from tools import benchnodered, provision
from tools.benchnodered import FLOW, plain_read, ratio, sealed_reads, settings_js, steady_rate


def _flow() -> dict[str, dict[str, object]]:
    nodes = json.loads(FLOW.read_text("utf-8"))
    return {str(n["id"]): n for n in nodes}


def test_the_flow_is_mqtt_in_then_patient_then_encounter() -> None:
    nodes = _flow()
    path, here = [], "reads"
    while True:
        node = nodes[here]
        path.append(node["type"])
        wires = node["wires"]
        assert isinstance(wires, list) and len(wires) == 1
        if not wires[0]:
            break
        (here,) = wires[0]
    assert path == ["mqtt in", "function", "http request", "function", "http request", "function"]
    reads = nodes["reads"]
    assert reads["qos"] == "1" and reads["datatype"] == "json" and reads["topic"] == "${READ_TOPIC}"
    broker = nodes[str(reads["broker"])]
    assert broker["type"] == "mqtt-broker" and broker["usetls"] is True
    assert nodes[str(broker["tls"])]["verifyservercert"] is True  # the facility's CA, checked
    assert "credentials" not in broker  # the account comes from flow_cred.json, per run
    for name in ("post-patient", "post-encounter"):
        assert nodes[name]["url"] == "" and nodes[name]["method"] == "use"  # msg.url, msg.method


def test_the_flow_posts_the_patient_conditionally_and_names_the_visit_as_cccd_edge_does() -> None:
    nodes = _flow()
    patient, encounter = str(nodes["patient"]["func"]), str(nodes["encounter"]["func"])
    assert "If-None-Exist" in patient and '"/Patient"' in patient and 'env.get("HIS_URL")' in patient
    assert "urn:cccd-edge:visit" in encounter  # collector/forward/fhir.SID_VISIT: counted alike
    assert '"Patient/" + msg.payload.id' in encounter


def test_settings_are_headless_with_plain_credentials_and_the_run_s_environment() -> None:
    text = settings_js(1880, {"HIS_URL": 'http://127.0.0.1:9/fhir"x'})
    assert 'process.env["HIS_URL"] = "http://127.0.0.1:9/fhir\\"x";' in text  # quoted as JSON
    for line in (
        "httpAdminRoot: false,",
        "httpNodeRoot: false,",
        "credentialSecret: false,",
        "uiPort: 1880,",
    ):
        assert line in text


def test_steady_rate_takes_the_first_and_last_sample_inside_the_window() -> None:
    samples = [(0.0, 0), (1.0, 5), (2.5, 40), (5.0, 90), (10.0, 190), (11.0, 200)]
    assert steady_rate(samples, 2.5, 10.0) == (190 - 40) / 7.5
    assert math.isnan(steady_rate(samples, 6.0, 9.0))  # no sample inside
    assert math.isnan(steady_rate([(1.0, 3)], 0.0, 10.0))
    assert ratio(150.0, 100.0) == 1.5
    assert math.isnan(ratio(150.0, 0.0)) and math.isnan(ratio(math.nan, 10.0))


def test_the_offered_reads_are_the_simulator_s_and_the_plain_ones_the_same_read(tmp_path: Path) -> None:
    home = provision.init(tmp_path / "home", "79001", broker_port=18883, run_here=True, metrics_port=0)
    paths = provision.devices(
        home.path, "79001", [("qr-0001", "esp32", "Quầy 1"), ("qr-0002", "esp32", "Quầy 2")]
    )
    configs = [json.loads(p.read_text("utf-8")) for p in paths]
    reads = sealed_reads(configs, 5, tmp_path)
    assert [len(r) for r in reads] == [5, 5]
    cfg = configs[1]
    k = keys.derive(bytes.fromhex(cfg["secret"]))
    topic = schema.topic("79001", "qr-0002", "read")
    opened = [schema.decode("read", envelope.parse(s).open(k.up_key, k.up_iv, topic)) for s in reads[1]]
    assert [r["seq"] for r in opened] == [0, 1, 2, 3, 4]
    plain = json.loads(plain_read(cfg, reads[1][2]))
    assert plain["seq"] == 2 and plain["id"]["cccd"] == opened[2]["id"]["cccd"]
    assert plain["pid"] == "h'" + opened[2]["pid"].hex() + "'"
    assert Truth(tmp_path / "reads.db").accepted()  # made by the simulator's nodes, recorded


def test_the_pinned_node_red_is_found_without_npm_when_installed(tmp_path: Path) -> None:
    package = tmp_path / "node_modules" / "node-red" / "package.json"
    package.parent.mkdir(parents=True)
    package.write_text(json.dumps({"version": benchnodered.NODE_RED_VERSION}), "utf-8")
    assert benchnodered.install(lambda _m: None, tmp_path) == package.parent / "red.js"
