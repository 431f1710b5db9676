"""Reads in the flash outbox reach the broker in order; the link dropped and restored in the middle
loses none, and a read the broker acknowledged is never sent again (firmware/uplink.py)."""

from fwcheck import ERRORS, Event, FakeBroker, Scratch, pause, run

from firmware.mqtt import Session
from firmware.outbox import Outbox
from firmware.uplink import Uplink

TOPIC = "cccd/v1/38001/qr-0007/read"
SMALL = {"segment_size": 1024, "capacity": 8192, "max_record": 256}


def _sealed(seq):
    return b"sealed-%d" % seq


async def _until_empty(ob):
    while len(ob):
        await pause()


def _outbox(d, n):
    ob = Outbox(d, **SMALL)
    for seq in range(n):
        ob.append(seq, _sealed(seq))
    return ob


def _linked(ob, window):
    """An uplink for ``ob`` with a session connected to a new fake broker."""
    uplink = Uplink(ob, TOPIC, window=window, event=Event())
    broker = FakeBroker()
    session = Session(broker.reader, broker)
    uplink.attach(session)

    async def up():
        await session.connect("qr-0007")

    run(up())
    return uplink, broker, session


def test_reads_published_in_order_and_removed_on_puback():
    with Scratch() as d:
        ob = _outbox(d, 10)
        uplink, broker, session = _linked(ob, 3)

        run(_until_empty(ob), session.run(), uplink.pump())
        assert [p[1] for p in broker.published] == [_sealed(s) for s in range(10)]
        assert all(p[0] == TOPIC and p[2] == 1 for p in broker.published)
        ob.close()
        ob = Outbox(d, **SMALL)
        assert len(ob) == 0  # gone from flash too
        ob.close()


def test_link_dropped_and_restored_no_loss_no_repeat_after_puback():
    with Scratch() as d:
        ob = _outbox(d, 6)
        uplink, first, session = _linked(ob, 4)
        first.ack_limit = 3  # then PUBACKs are lost with the link

        async def until(n):
            while len(ob) > n:
                await pause()
            for _ in range(20):
                await pause()
            first.cut()
            for _ in range(5):  # the session and the pump find the link gone
                await pause()

        run(until(3), session.run(), uplink.pump())  # 0, 1, 2 acknowledged; then the cut
        # the receive loop ends with the link (the pump, idle, is stopped by its owner)
        assert len(ERRORS) == 1 and isinstance(ERRORS[0], OSError)
        sent_then = [p[1] for p in first.published]
        assert sent_then == [_sealed(s) for s in range(6)]  # 3, 4, 5 in flight, not acknowledged
        assert len(ob) == 3
        # new reads while the link is down: straight into flash
        for seq in range(6, 9):
            ob.append(seq, _sealed(seq))
            uplink.kick()
        ob.close()
        ob = Outbox(d, **SMALL)  # and a reboot for good measure
        uplink, second, session = _linked(ob, 4)

        run(_until_empty(ob), session.run(), uplink.pump())
        again = [p[1] for p in second.published]
        assert again == [_sealed(s) for s in range(3, 9)]  # in order, nothing acknowledged repeated
        everything = set(sent_then) | set(again)
        assert everything == {_sealed(s) for s in range(9)}  # no loss
        ob.close()
