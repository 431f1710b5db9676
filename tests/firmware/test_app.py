"""The node application (firmware/app.py): scanner frames in → sealed reads in flash → published in
order once the link is up, with the birth, Last Will and inventory first; results shown, settings
applied and kept; replayed or tampered messages from the collector counted and ignored."""

import gc
import json

from fwcheck import Event, FakeBroker, FakeUART, Scratch, pause, run
from test_node import QR, SECRET, FixedClock, _config

from cccd import envelope, keys, schema
from firmware.app import Node, backoff_ms
from firmware.mqtt import Session


class Panel:
    """Stand-in for the lights, buzzer and display."""

    def __init__(self):
        self.shown = []

    def accepted(self, seq):
        self.shown.append(("green", seq))

    def rejected(self, reason, text):
        self.shown.append(("red", reason))

    def result(self, status, text):
        self.shown.append((status, text))


def _node(d, uart=None):
    return Node(_config(d), d, uart or FakeUART(), FixedClock(), feedback=Panel(), event=Event())


def _scanned(d, reads):
    """A node whose counter accepted ``reads`` reads (seq 0, 1, ...), its panel cleared."""
    uart = FakeUART()
    node = _node(d, uart)
    for i in range(reads):
        uart.send(QR.encode() + b"\r")
        node.scan(10000 * i)  # the next patient, same card: a new read
    node.feedback.shown.clear()
    return node


def _down(kind, seq, body, topic):
    k = keys.derive(SECRET)
    return envelope.seal(k.down_key, k.down_iv, b"collector", seq, topic, schema.encode(kind, body))


def _until_empty(ob):
    async def wait():
        while len(ob):
            await pause()

    return wait()


def test_frames_in_reads_out_in_order_once_the_link_is_up():
    with Scratch() as d:
        uart = FakeUART()
        node = _node(d, uart)
        uart.send(QR.encode() + b"\rjunk\r")
        node.scan(0)
        uart.send(QR.encode() + b"\r")
        node.scan(10000)  # the next patient, same card: a new read
        assert node.feedback.shown == [("green", 0), ("red", "unknown_format"), ("green", 1)]
        assert len(node.outbox) == 2  # no link yet: in flash
        broker = FakeBroker()
        session = Session(broker.reader, broker)
        run(node.session_up(session, mac="24:6f:28:00:00:01"))
        connect = broker.connects[0]
        assert b"cccd/v1/38001/qr-0007/status" in connect  # the Last Will
        status = [p for p in broker.published if p[0].endswith("/status")]
        assert schema.decode("status", status[0][1])["state"] == "online" and status[0][3]  # retained
        [inventory] = [p for p in broker.published if p[0].endswith("/inventory")]
        inv = schema.decode("inventory", inventory[1])
        assert inventory[3] and inv["readers"][0]["type"] == "qr" and inv["mac"] == "24:6f:28:00:00:01"
        assert len(broker.subscribed) == 2
        run(_until_empty(node.outbox), session.run(), node.uplink.pump())
        reads = [p for p in broker.published if p[0].endswith("/read")]
        assert [envelope.parse(p[1]).seq for p in reads] == [0, 1]
        tel = schema.decode("telemetry", node.telemetry(rssi=-61))
        assert tel["q"] == 0 and tel["reads"] == 2 and tel["rej"] == 1 and tel["drop"] == 0
        assert tel["boot"] == 1 and tel["rssi"] == -61
        node.outbox.close()


def test_results_shown_and_replays_or_forgeries_counted():
    with Scratch() as d:
        node = _scanned(d, 1)  # read 0: the patient at the counter
        topic = node.topic("result")
        ok = schema.result(0, "ok", "Có BHYT\nHạn 31/12/2026")
        node.on_message(topic, _down("result", 5, ok, topic))
        assert node.feedback.shown == [("ok", "Có BHYT\nHạn 31/12/2026")]
        node.on_message(topic, _down("result", 5, ok, topic))  # replayed
        node.on_message(topic, _down("result", 4, ok, topic))  # older
        forged = bytearray(_down("result", 6, ok, topic))
        forged[-1] ^= 1
        node.on_message(topic, bytes(forged))
        node.on_message(topic, b"\xff garbage")
        other = "cccd/v1/38001/qr-0008/result"
        node.on_message(other, _down("result", 7, ok, other))  # not ours
        up = keys.derive(SECRET)  # sealed with the up key: the wrong direction
        node.on_message(
            topic, envelope.seal(up.up_key, up.up_iv, b"x", 8, topic, schema.encode("result", ok))
        )
        assert node.bad_down == 6 and node.results == 1 and len(node.feedback.shown) == 1
        node.outbox.close()


def test_a_late_answer_for_an_earlier_patient_is_counted_not_shown():
    # After a day offline the answers for the day's reads arrive while another patient is at the
    # counter: only the answer for the latest read is shown.
    with Scratch() as d:
        node = _scanned(d, 2)  # read 1: the patient at the counter now
        topic = node.topic("result")
        node.on_message(topic, _down("result", 0, schema.result(0, "reject", "Không có BHYT"), topic))
        assert node.feedback.shown == [] and node.late_results == 1 and node.results == 1
        node.on_message(topic, _down("result", 1, schema.result(1, "ok", "Có BHYT"), topic))
        assert node.feedback.shown == [("ok", "Có BHYT")] and node.last_result == ("ok", "Có BHYT")
        assert node.late_results == 1 and node.results == 2
        node.outbox.close()


def test_settings_from_the_config_topic_applied_and_kept_across_a_restart():
    with Scratch() as d:
        node = _node(d)
        topic = node.topic("config")
        node.on_message(
            topic, _down("config", 1, {"repeat_ms": 5000, "heartbeat_s": 1, "colour": "red"}, topic)
        )
        assert node.scanner.repeat_ms == 5000 and node.settings["heartbeat_s"] == 10  # clamped
        assert "colour" not in node.settings  # unknown settings ignored
        node.outbox.close()
        node = _node(d)
        assert node.boot == 2 and node.scanner.repeat_ms == 5000
        node.on_message(topic, _down("config", 1, {"repeat_ms": 700}, topic))  # replayed after reboot
        assert node.scanner.repeat_ms == 5000 and node.bad_down == 1
        with open(d + "/settings") as f:
            assert json.load(f)["_seq"] == 1
        node.outbox.close()


def test_reconnect_backoff_is_jittered_and_capped():
    assert backoff_ms(0, 0.0) == 500
    assert backoff_ms(3, 0.5) == int(0.5 * 1.5**3 * 1000)
    assert backoff_ms(50, 0.999) == backoff_ms(10, 0.999) < 60000


def test_heap_of_a_scan_with_the_scanner_and_the_panel():
    """MicroPython: every read after the first stays within 16 KB, the seq reservation's write
    (every 100th read) included; the first builds the core's caches, which stay."""
    if not hasattr(gc, "mem_alloc"):
        return  # CPython: nothing to measure
    with Scratch() as d:
        uart = FakeUART()
        node = _node(d, uart)
        used = []
        for i in range(102):
            uart.send(QR.encode() + b"\r")
            gc.collect()
            before = gc.mem_alloc()
            node.scan(i * 10000)
            used.append(gc.mem_alloc() - before)
        assert node.cycle.reads == 102
        print("HEAP-SCAN first %d median %d max %d" % (used[0], sorted(used)[51], max(used[1:])))
        assert max(used[1:]) <= 16384, max(used[1:])
        node.outbox.close()
