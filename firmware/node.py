"""The node's read cycle: a scanner frame becomes a sealed Read in the outbox, or a clear rejection.

    frame → cccd.qr.parse → cccd.pseudonym.pid → cccd.schema.read → cccd.envelope.seal → Outbox

The sequence number is taken from the :class:`~firmware.seqstore.SeqStore` (reserved in flash
before use) and the sealed Read is in flash (:class:`~firmware.outbox.Outbox`) before the
counter hears the green beep: from then on the read survives a power cut and leaves the node only
after the broker's PUBACK. Nothing here touches the network.

The keys come from the node configuration file of docs/PROTOCOL.md §7 (:func:`load_config`); the
personal data of a scan lives only in RAM during the cycle, never in a log or unencrypted in flash.
"""

import json
import time

from cccd import envelope, keys, pseudonym, qr, schema

VIETNAM_UTC_OFFSET = 7 * 3600
_CLOCK_SET_YEAR = 2024
# Seconds from 1970 to the port's epoch: some MicroPython ports count from 2000-01-01.
_EPOCH = 946684800 if time.gmtime(0)[0] == 2000 else 0


class ConfigError(ValueError):
    """The node configuration file is missing, unreadable or incomplete (no secret in the text)."""


def load_config(path):
    """The node configuration (a dict, as docs/PROTOCOL.md §7), checked enough to run on."""
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as exc:
        raise ConfigError("node configuration %s unreadable (%s)" % (path, type(exc).__name__)) from None
    if not isinstance(cfg, dict):
        raise ConfigError("node configuration: not a JSON object")
    for name in ("device", "facility", "secret", "pseudonym_secret"):
        if not isinstance(cfg.get(name), str):
            raise ConfigError("node configuration: no %s" % name)
    try:
        schema.topic(cfg["facility"], cfg["device"], "read")
        secret = bytes.fromhex(cfg["secret"])
        bytes.fromhex(cfg["pseudonym_secret"])
    except ValueError:
        raise ConfigError("node configuration: bad device, facility or secret") from None
    if len(secret) != 32:
        raise ConfigError("node configuration: the secret is not 32 bytes")
    return cfg


class Clock:
    """Unix time in ms and its quality for the Read's ``clk``: ``ntp``, ``rtc`` or ``none``.

    ``ntp`` once :meth:`synced` was called (the main loop's NTP succeeded); ``rtc`` when the
    real-time clock holds a plausible date (set before a soft reboot); ``none`` otherwise.
    """

    def __init__(self):
        self._ntp = False

    def synced(self):
        self._ntp = True

    def unix_ms(self):
        return time.time_ns() // 1000000 + _EPOCH * 1000

    def quality(self):
        if self._ntp:
            return "ntp"
        return "rtc" if time.gmtime()[0] >= _CLOCK_SET_YEAR else "none"


def vietnam_date(unix_s):
    """(year, month, day) in Vietnam (UTC+7) at Unix time ``unix_s``."""
    t = time.gmtime(unix_s - _EPOCH + VIETNAM_UTC_OFFSET)
    return (t[0], t[1], t[2])


class Accepted:
    """The scan is a Read, sealed and in the outbox under ``seq``: green light, one beep."""

    ok = True

    def __init__(self, seq, doc):
        self.seq = seq
        self.doc = doc


class Rejected:
    """The scan is not a read: ``reason`` (cccd.qr's codes) and ``text`` for the display."""

    ok = False

    def __init__(self, reason, text):
        self.reason = reason
        self.text = text


class ReadCycle:
    """Turns scanner frames into sealed Reads in ``outbox``, numbered by ``seqs``."""

    def __init__(self, config, outbox, seqs, clock):
        self.device = config["device"]
        self.facility = config["facility"]
        k = keys.derive(bytes.fromhex(config["secret"]))
        self._key = k.up_key
        self._iv = k.up_iv
        self._pseudonym_secret = bytes.fromhex(config["pseudonym_secret"])
        self._kid = self.device.encode()
        self.topic = schema.topic(self.facility, self.device, "read")
        self.outbox = outbox
        self.seqs = seqs
        self.clock = clock
        self.reads = 0  # accepted since boot (telemetry's reads)
        self.rejected = 0  # rejected scans since boot (telemetry's rej)
        seqs.floor(outbox.last_seq + 1)  # belt and braces: above every read still in flash

    def read(self, frame):
        """One frame from the scanner → :class:`Accepted` or :class:`Rejected`."""
        ts = self.clock.unix_ms()
        clk = self.clock.quality()
        today = None if clk == "none" else vietnam_date(ts // 1000)
        try:
            scan = qr.parse(frame, now=today)
        except qr.QRError as exc:
            self.rejected += 1
            return Rejected(exc.reason, exc.text)
        pid = self._pid(scan.ident)
        if pid is None:
            self.rejected += 1
            return Rejected("not_cccd", qr.reason_text("not_cccd"))
        seq = self.seqs.next()
        msg = schema.read(seq, ts, clk, "qr", scan.doc, pid, scan.ident, warn=scan.warn or None)
        payload = schema.encode("read", msg)
        sealed = envelope.seal(self._key, self._iv, self._kid, seq, self.topic, payload)
        self.outbox.append(seq, sealed)
        self.reads += 1
        return Accepted(seq, scan.doc)

    def _pid(self, ident):
        """The pseudonym of the personal ID, else of the BHXH number (a BHYT card's last 10)."""
        cccd = ident.get("cccd")
        card = ident.get("bhyt")
        try:
            if cccd is not None:
                return pseudonym.pid(self._pseudonym_secret, cccd=cccd)
            if card is not None:
                return pseudonym.pid(self._pseudonym_secret, bhxh=card[-10:])
        except ValueError:
            pass
        return None
