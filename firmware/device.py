"""The ESP32 board: pins, lights, buzzer, display, Wi-Fi, TLS, NTP, watchdog, and :func:`main`.

``/main.py`` (written by ``cccd-edge firmware build``) calls :func:`main`. Files on the node:

    /node.json     the node configuration file of docs/PROTOCOL.md §7 (from ``cccd-edge provision``)
    /wifi.json     {"ssid": ..., "password": ...}: the counter's Wi-Fi, written at installation
    /data/         the outbox, the sequence reservation, the boot counter, the settings

Only :func:`main` and :func:`open_link` need the hardware modules (``machine``, ``network``,
``ntptime``, ``ssl``); they import them when they run, so the rest is tested on a host with
stand-ins for the pins, the buzzer and the I2C bus.
"""

import asyncio
import binascii
import os

from cccd.text import lower_vn
from firmware.app import Node, serve
from firmware.node import Clock, load_config
from firmware.scanner import open_uart
from firmware.ticks import ticks_diff, ticks_ms

CONFIG = "/node.json"
WIFI = "/wifi.json"
ROOT = "/data"
WDT_MS = 30000  # the scanner loop feeds it every 20 ms; a hang of 30 s resets the node
WIFI_WAIT_MS = 20000
# Wiring of the reference board (ESP32-DevKitC): UART2 to the scanner, three LEDs, a buzzer, and
# an SSD1306 128x64 OLED on I2C0.
BOARD = {
    "uart": 2,
    "baud": 9600,
    "tx": 17,
    "rx": 16,
    "green": 25,
    "amber": 26,
    "red": 27,
    "buzzer": 14,
    "sda": 21,
    "scl": 22,
}
ACCEPTED_TEXT = "Da nhan the\nXin cho..."

_FOLD = (
    "aàáạảãâầấậẩẫăằắặẳẵ",
    "eèéẹẻẽêềếệểễ",
    "iìíịỉĩ",
    "oòóọỏõôồốộổỗơờớợởỡ",
    "uùúụủũưừứựửữ",
    "yỳýỵỷỹ",
    "dđ",
)


def ascii_text(s):
    """Vietnamese text for the display's ASCII font: the letters without their marks."""
    out = []
    for c in s:
        if c < "\x80":
            out.append(c)
            continue
        low = lower_vn(c)
        base = "?"
        for group in _FOLD:
            if low in group:
                base = group[0]
                break
        out.append(base.upper() if low != c else base)
    return "".join(out)


class SSD1306:
    """A 128x64 SSD1306 OLED on I2C, drawn with ``framebuf``'s 8x8 font: 16 characters a line."""

    def __init__(self, i2c, addr=0x3C, width=128, height=64):
        import framebuf  # noqa: PLC0415 - MicroPython's

        self.i2c = i2c
        self.addr = addr
        self.width = width
        self.buf = bytearray(width * height // 8)
        self.fb = framebuf.FrameBuffer(self.buf, width, height, framebuf.MONO_VLSB)
        for cmd in (0xAE, 0x20, 0x00, 0x40, 0xA1, 0xA8, height - 1, 0xC8, 0xD3, 0x00, 0xDA, 0x12):
            self._cmd(cmd)
        for cmd in (0xD5, 0x80, 0xD9, 0xF1, 0xDB, 0x30, 0x81, 0xFF, 0xA4, 0xA6, 0x8D, 0x14, 0xAF):
            self._cmd(cmd)

    def _cmd(self, c):
        self.i2c.writeto(self.addr, bytes([0x80, c]))

    def lines(self, lines):
        self.fb.fill(0)
        for i, line in enumerate(lines[:4]):
            self.fb.text(line[:16], 0, 8 + 16 * i, 1)
        for c in (0x21, 0, self.width - 1, 0x22, 0, 7):
            self._cmd(c)
        self.i2c.writevto(self.addr, (b"\x40", self.buf))


_COLOURS = {"ok": "green", "warn": "amber", "pending": "amber", "reject": "red", "error": "red"}


class Panel:
    """The counter's lights, buzzer and display (any may be None); ``tick()`` ends the beeps."""

    def __init__(self, green=None, amber=None, red=None, buzzer=None, display=None):
        self.leds = {"green": green, "amber": amber, "red": red}
        self.buzzer = buzzer
        self.display = display
        self._beeps = []  # remaining (on?, ms) steps
        self._since = 0

    def accepted(self, seq):
        self._show("green", ACCEPTED_TEXT, (1, 80))

    def rejected(self, reason, text):
        self._show("red", text, (1, 80, 0, 80, 1, 80))

    def result(self, status, text):
        colour = _COLOURS.get(status, "amber")
        self._show(colour, text, (1, 300) if colour == "green" else (1, 150, 0, 100, 1, 150))

    def _show(self, colour, text, pattern):
        for name, pin in self.leds.items():
            if pin is not None:
                pin.value(1 if name == colour else 0)
        if self.display is not None:
            self.display.lines(ascii_text(text).split("\n"))
        if self.buzzer is not None:
            self._beeps = [(pattern[i], pattern[i + 1]) for i in range(0, len(pattern), 2)]
            self._step(ticks_ms())

    def _step(self, now):
        if self._beeps:
            self.buzzer.value(self._beeps[0][0])
            self._since = now
        else:
            self.buzzer.value(0)

    def tick(self, now=None):
        if not self._beeps:
            return
        now = ticks_ms() if now is None else now
        if ticks_diff(now, self._since) >= self._beeps[0][1]:
            self._beeps.pop(0)
            self._step(now)


def pem_to_der(pem):
    """The DER bytes of the first block of a PEM text (MicroPython's ssl takes DER)."""
    try:
        body = pem.split("-----BEGIN ", 1)[1].split("-----", 1)[1].split("-----END ", 1)[0]
        return binascii.a2b_base64("".join(body.split()).encode())
    except (IndexError, ValueError):
        raise ValueError("not a PEM text") from None


async def open_link(config, wifi, wlan, clock):
    """Wi-Fi up, the clock from NTP once, and a TLS connection to the broker; OSError if not."""
    import ntptime  # noqa: PLC0415 - the device's

    if not wlan.isconnected():
        wlan.connect(wifi["ssid"], wifi["password"])
        start = ticks_ms()
        while not wlan.isconnected():
            if ticks_diff(ticks_ms(), start) > WIFI_WAIT_MS:
                raise OSError("wifi: not connected")
            await asyncio.sleep_ms(200)
    if clock.quality() != "ntp":
        try:
            ntptime.settime()
            clock.synced()
        except OSError:
            pass  # the reads say "rtc" or "none" meanwhile
    broker = config["broker"]
    ctx = None
    if broker.get("tls", True):
        import ssl  # noqa: PLC0415

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=pem_to_der(broker["ca"]))
        if broker.get("cert"):  # a facility that asks for client certificates (mTLS)
            ctx.load_cert_chain(pem_to_der(broker["cert"]), pem_to_der(broker["key"]))
    reader, writer = await asyncio.open_connection(broker["host"], broker.get("port", 8883), ssl=ctx)
    mac = ":".join(["%02x" % b for b in wlan.config("mac")])
    return reader, writer, mac, lambda: wlan.status("rssi")


NOT_CONFIGURED = "Chua cau hinh\nGoi phong IT"


def read_files(config_path=CONFIG, wifi_path=WIFI):
    """The node configuration and the Wi-Fi settings, or None when either is missing or bad."""
    import json  # noqa: PLC0415

    try:
        config = load_config(config_path)
        with open(wifi_path) as f:
            wifi = json.load(f)
    except (OSError, ValueError):  # ConfigError is a ValueError
        return None
    if not isinstance(wifi, dict) or not isinstance(wifi.get("ssid"), str):
        return None
    return config, wifi


def main():
    """Boot the node and serve forever.

    Without its files the node shows so and waits for IT, without the watchdog: a missing file
    is not cured by a reset, and a reboot loop would hide the message.
    """
    import random  # noqa: PLC0415

    import machine  # noqa: PLC0415 - the device's
    import network  # noqa: PLC0415

    pin = machine.Pin
    panel = Panel(
        pin(BOARD["green"], pin.OUT),
        pin(BOARD["amber"], pin.OUT),
        pin(BOARD["red"], pin.OUT),
        pin(BOARD["buzzer"], pin.OUT),
    )
    try:
        panel.display = SSD1306(machine.I2C(0, sda=pin(BOARD["sda"]), scl=pin(BOARD["scl"])))
    except OSError:
        pass  # no display fitted: the lights and the buzzer still speak
    files = read_files()
    if files is None:
        panel.rejected("config", NOT_CONFIGURED)
        return
    config, wifi = files
    wdt = machine.WDT(timeout=WDT_MS)
    try:
        os.mkdir(ROOT)
    except OSError:
        pass
    uart = open_uart(BOARD["uart"], BOARD["baud"], BOARD["tx"], BOARD["rx"])
    clock = Clock()
    node = Node(config, ROOT, uart, clock, feedback=panel)
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    asyncio.run(
        serve(
            node,
            lambda: open_link(config, wifi, wlan, clock),
            wdt,
            random_unit=lambda: random.getrandbits(16) / 65536,
        )
    )
