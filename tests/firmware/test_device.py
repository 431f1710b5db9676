"""The board's parts that run without the board (firmware/device.py): the lights, the buzzer's
patterns, the display's text and its bytes on the I2C bus, PEM for MicroPython's ssl."""

import binascii

from fwcheck import Scratch, raises, write
from test_node import _config

from firmware.device import SSD1306, Panel, ascii_text, pem_to_der, read_files
from firmware.ticks import ticks_ms


class FakePin:
    def __init__(self):
        self.v = 0
        self.history = []

    def value(self, v=None):
        if v is not None:
            self.v = v
            self.history.append(v)
        return self.v


class FakeI2C:
    def __init__(self):
        self.writes = []

    def writeto(self, addr, data):
        self.writes.append((addr, bytes(data)))

    def writevto(self, addr, parts):
        self.writes.append((addr, b"".join([bytes(p) for p in parts])))


class FakeDisplay:
    def __init__(self):
        self.shown = []

    def lines(self, lines):
        self.shown.append(lines)


def test_vietnamese_text_for_an_ascii_display():
    assert ascii_text("Có BHYT\nHạn 31/12/2026") == "Co BHYT\nHan 31/12/2026"
    assert ascii_text("ĐẮK LẮK – Ừ") == "DAK LAK ? U"


def test_lights_buzzer_and_display_follow_the_outcome():
    g, a, r, buzz = FakePin(), FakePin(), FakePin(), FakePin()
    display = FakeDisplay()
    panel = Panel(g, a, r, buzz, display)
    panel.accepted(7)
    assert (g.v, a.v, r.v) == (1, 0, 0) and buzz.v == 1
    panel.tick(ticks_ms() + 1000)  # the beep is over
    assert buzz.v == 0
    panel.rejected("bad_id", "Số CCCD sai\nQuét lại")
    assert (g.v, a.v, r.v) == (0, 0, 1) and display.shown[-1] == ["So CCCD sai", "Quet lai"]
    t0 = ticks_ms()
    for t in range(0, 1000, 10):
        panel.tick(t0 + t)
    assert buzz.history[-4:] == [1, 0, 1, 0]  # two beeps: a rejection
    panel.result("pending", "Đang kiểm tra\nBHYT...")
    assert (g.v, a.v, r.v) == (0, 1, 0)
    panel.result("ok", "Có BHYT")
    assert (g.v, a.v, r.v) == (1, 0, 0)
    Panel().accepted(1)  # nothing fitted: nothing fails


def test_pem_to_der():
    der = bytes(range(200))
    b64 = binascii.b2a_base64(der).decode().strip()
    pem = "-----BEGIN CERTIFICATE-----\n" + b64[:64] + "\n" + b64[64:] + "\n-----END CERTIFICATE-----\n"
    assert pem_to_der(pem) == der
    raises(ValueError, pem_to_der, "no pem here")


def test_display_bytes_on_the_bus():
    try:
        import framebuf  # noqa: F401 - MicroPython only
    except ImportError:
        return  # CPython has no framebuf
    i2c = FakeI2C()
    oled = SSD1306(i2c)
    assert all(addr == 0x3C for addr, _ in i2c.writes) and i2c.writes[-1][1] == b"\x80\xaf"  # on
    oled.lines(["Co BHYT", "Han 31/12/2026"])
    _, data = i2c.writes[-1]
    assert data[0] == 0x40 and len(data) == 1 + 128 * 64 // 8 and any(data[1:])


def test_the_node_files_are_read_or_refused_without_a_crash():
    with Scratch() as d:
        _config(d)  # writes d/node.json
        wifi = d + "/wifi.json"
        assert read_files(d + "/node.json", wifi) is None  # no Wi-Fi file yet
        write(wifi, b'{"ssid": "BV-Quay", "password": "x"}')
        config, got = read_files(d + "/node.json", wifi)
        assert config["device"] == "qr-0007" and got["ssid"] == "BV-Quay"
        write(wifi, b"[]")
        assert read_files(d + "/node.json", wifi) is None
        assert read_files(d + "/missing.json", wifi) is None
