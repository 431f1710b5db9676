"""The node's MQTT 3.1.1 client (firmware/mqtt.py): the exact bytes on the wire, and every failure
an OSError that ends the session, never a hang or a crash."""

from fwcheck import ERRORS, FakeBroker, Pipe, pause, raises, run

from firmware.mqtt import MQTTError, Session, connect_packet, publish_packet

STATUS = "cccd/v1/38001/qr-0007/status"


def test_connect_packet_bytes():
    got = connect_packet("qr-0007", 60, "qr-0007", "pw", (STATUS, b"\xa1", 1, True))
    body = (
        b"\x00\x04MQTT\x04"
        + bytes([0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02])  # user, password, will retain/QoS 1/flag, clean
        + b"\x00\x3c"  # keepalive 60 s
        + b"\x00\x07qr-0007"
        + b"\x00\x1c"
        + STATUS.encode()
        + b"\x00\x01\xa1"
        + b"\x00\x07qr-0007"
        + b"\x00\x02pw"
    )
    assert got == b"\x10" + bytes([len(body)]) + body
    assert connect_packet("n", 30) == b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x1e\x00\x01n"


def test_publish_packet_bytes():
    assert publish_packet("a/b", b"xy", 1, False, 0x0102) == b"\x32\x09\x00\x03a/b\x01\x02xy"
    assert publish_packet("a/b", b"", 0, True) == b"\x31\x05\x00\x03a/b"
    big = publish_packet("t", bytes(200), 1, pid=7)
    assert big[:3] == b"\x32\xcd\x01"  # remaining length 205 in two bytes


def test_session_publishes_subscribes_and_acknowledges_incoming():
    broker = FakeBroker()
    acks = []
    messages = []
    session = Session(broker.reader, broker, on_message=lambda t, p: messages.append((t, p)))
    session.on_puback = acks.append

    async def scenario():
        await session.connect("qr-0007", 60, "qr-0007", "pw", (STATUS, b"off", 1, True))
        return await session.publish("cccd/v1/38001/qr-0007/read", b"sealed", qos=1)

    async def exchange():
        await session.subscribe("cccd/v1/38001/qr-0007/result", 1)
        broker.send_publish("cccd/v1/38001/qr-0007/result", b"answer", qos=1, pid=9)
        await session.ping()
        for _ in range(10):
            await pause()
        broker.cut()  # the receive loop must end with an OSError
        for _ in range(3):
            await pause()

    pid = run(scenario())
    run(exchange(), session.run())
    [exc] = ERRORS
    assert isinstance(exc, OSError)
    assert acks == [pid] and broker.published[0][:3] == ("cccd/v1/38001/qr-0007/read", b"sealed", 1)
    assert messages == [("cccd/v1/38001/qr-0007/result", b"answer")]
    assert broker.acked == [9]  # the result's PUBACK went out after it was handled
    assert len(broker.connects) == 1 and len(broker.subscribed) == 1


def test_a_refused_connection_is_an_oserror():
    broker = FakeBroker(refuse=5)  # not authorised
    session = Session(broker.reader, broker)
    exc = raises(OSError, run, session.connect("qr-0007"))
    assert isinstance(exc, MQTTError) and "5" in str(exc)


def test_hostile_bytes_from_the_broker_end_the_session():
    for garbage in (
        b"\x20\x02\x00\x00\x30\xff\xff\xff\xff\x7f",  # a remaining length of more than 4 bytes
        b"\x20\x02\x00\x00\x30\xff\xff\x7f",  # 2 MB announced
        b"\x20\x02\x00\x00\xf0\x00",  # a reserved packet type
        b"\x20\x02\x00\x00\x32\x01\x00",  # a PUBLISH too short for its topic length
        b"\x20\x02\x00\x00\x40",  # a cut in the middle of a packet
    ):
        reader = Pipe()
        reader.feed(garbage)
        reader.close()
        broker = FakeBroker()
        session = Session(reader, broker)

        async def scenario(session=session):
            await session.connect("n")
            await session.run()

        raises(OSError, run, scenario())
