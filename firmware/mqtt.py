"""A small MQTT 3.1.1 client on asyncio streams: just what the node needs, and nothing that queues.

Why our own client (issue 6 asks the choice to be said here):

- micropython-lib's ``umqtt.simple`` / ``umqtt.robust`` use a blocking socket: a reconnect or a
  TLS handshake (seconds on an ESP32) would freeze the scanner, the lights and the display, and a
  QoS 1 publish waits for its PUBACK one message at a time.
- Peter Hinch's ``mqtt_as`` is asyncio and robust, but it brings its own Wi-Fi management and its
  own in-RAM queue with its own retries (about 1,000 lines): a second queue beside the flash
  outbox, which must stay the only place a read waits, and RAM we would rather give to TLS.
- This client is the packets and no policy: CONNECT (Last Will, user and password), PUBLISH QoS
  0/1, PUBACK both ways, SUBSCRIBE, PINGREQ, DISCONNECT. It never retries: every failure of the
  network, of TLS or of the broker is an ``OSError`` (:class:`MQTTError` for a protocol one) out
  of the session, the caller drops the session and connects again with a capped, jittered
  backoff, and the outbox redelivers what had no PUBACK (firmware/uplink.py). As in mqtt_as,
  robustness is the design goal; unlike it, the state that matters is in flash.

The streams are asyncio's (``asyncio.open_connection`` with ``ssl=`` on the device); tests give
stand-ins with ``readexactly``, ``write`` and ``drain``.
"""

import struct

from firmware.ticks import ticks_diff, ticks_ms

CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
SUBSCRIBE = 0x82
SUBACK = 0x90
PINGREQ = 0xC0
PINGRESP = 0xD0
DISCONNECT = 0xE0
MAX_PACKET = 8192 + 256  # an envelope (cccd.envelope.MAX_ENVELOPE) and its topic


class MQTTError(OSError):
    """The broker refused us or spoke nonsense; the session is over either way."""


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _str(s):
    data = s.encode() if isinstance(s, str) else bytes(s)
    return struct.pack(">H", len(data)) + data


def packet(kind, body):
    """A whole packet: fixed header (kind with its flags), remaining length, body."""
    return bytes([kind]) + _varint(len(body)) + body


def connect_packet(client_id, keepalive, username=None, password=None, will=None, clean=True):
    """CONNECT; ``will``: (topic, payload, qos, retain) or None."""
    flags = 0x02 if clean else 0
    payload = _str(client_id)
    if will is not None:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += _str(topic) + _str(message)
    if username is not None:
        flags |= 0x80
        payload += _str(username)
        if password is not None:
            flags |= 0x40
            payload += _str(password)
    return packet(CONNECT, b"\x00\x04MQTT\x04" + bytes([flags]) + struct.pack(">H", keepalive) + payload)


def publish_packet(topic, payload, qos=0, retain=False, pid=0, dup=False):
    kind = PUBLISH | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    head = _str(topic) + (struct.pack(">H", pid) if qos else b"")
    return packet(kind, head + payload)


class Session:
    """One connection to the broker: connect, publish, subscribe, and a receive loop (:meth:`run`).

    ``on_message(topic, payload)`` is called for every PUBLISH from the broker (its PUBACK goes
    out after the call returns: at least once); ``on_puback(pid)`` for every PUBACK.
    """

    def __init__(self, reader, writer, on_message=None, on_puback=None):
        self.reader = reader
        self.writer = writer
        self.on_message = on_message
        self.on_puback = on_puback
        self.keepalive = 0
        self._pid = 0
        self.last_rx = ticks_ms()

    async def connect(self, client_id, keepalive=60, username=None, password=None, will=None):
        self.keepalive = keepalive
        await self._send(connect_packet(client_id, keepalive, username, password, will))
        kind, body = await self._read_packet()
        if kind != CONNACK or len(body) != 2:
            raise MQTTError("mqtt: no CONNACK")
        if body[1]:
            raise MQTTError("mqtt: connection refused, return code %d" % body[1])

    def next_pid(self):
        self._pid = self._pid % 0xFFFF + 1
        return self._pid

    async def publish(self, topic, payload, qos=0, retain=False, dup=False):
        """Send a PUBLISH; returns its packet id (0 for QoS 0). Its PUBACK arrives in :meth:`run`."""
        pid = self.next_pid() if qos else 0
        await self._send(publish_packet(topic, payload, qos, retain, pid, dup))
        return pid

    async def subscribe(self, topic, qos=1):
        """Send a SUBSCRIBE; the SUBACK is checked by :meth:`run`."""
        pid = self.next_pid()
        await self._send(packet(SUBSCRIBE, struct.pack(">H", pid) + _str(topic) + bytes([qos])))
        return pid

    async def ping(self):
        await self._send(b"\xc0\x00")

    async def disconnect(self):
        await self._send(b"\xe0\x00")

    def idle_ms(self):
        """Milliseconds since the broker last said anything (a dead link says nothing)."""
        return ticks_diff(ticks_ms(), self.last_rx)

    async def run(self):
        """Receive until the connection fails (an OSError, always)."""
        while True:
            kind, body = await self._read_packet()
            high = kind & 0xF0
            if high == PUBLISH:
                await self._incoming(kind, body)
            elif high == PUBACK and len(body) == 2:
                if self.on_puback is not None:
                    self.on_puback(struct.unpack(">H", body)[0])
            elif high == SUBACK:
                if len(body) < 3 or body[2] == 0x80:
                    raise MQTTError("mqtt: subscription refused")
            elif high != PINGRESP:
                raise MQTTError("mqtt: unexpected packet 0x%02x" % kind)

    async def _incoming(self, kind, body):
        qos = (kind >> 1) & 3
        if len(body) < 2:
            raise MQTTError("mqtt: short PUBLISH")
        n = struct.unpack(">H", body[:2])[0]
        start = 2 + n + (2 if qos else 0)
        if qos > 1 or len(body) < start:
            raise MQTTError("mqtt: bad PUBLISH")
        topic = bytes(body[2 : 2 + n]).decode()
        if self.on_message is not None:
            self.on_message(topic, bytes(body[start:]))
        if qos:
            await self._send(b"\x40\x02" + bytes(body[2 + n : start]))

    async def _send(self, data):
        self.writer.write(data)
        await self.writer.drain()

    async def _read_packet(self):
        head = await self._read(1)
        n = 0
        shift = 0
        while True:
            b = (await self._read(1))[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 21:
                raise MQTTError("mqtt: bad remaining length")
        if n > MAX_PACKET:
            raise MQTTError("mqtt: packet of %d bytes" % n)
        body = await self._read(n) if n else b""
        self.last_rx = ticks_ms()
        return head[0], body

    async def _read(self, n):
        try:
            return await self.reader.readexactly(n)
        except EOFError:  # the connection closed (asyncio.IncompleteReadError is one too)
            raise MQTTError("mqtt: connection closed") from None
