"""Helpers for the firmware tests, under CPython and MicroPython alike: scratch directories and
file surgery (copy, truncate, overwrite) standing in for a power cut or a damaged flash."""

import os

try:
    import tempfile
except ImportError:  # MicroPython: the port's filesystem is in memory
    tempfile = None

_count = [0]


def _exists(path):
    try:
        os.stat(path)
    except OSError:
        return False
    return True


def _is_dir(path):
    return os.stat(path)[0] & 0o170000 == 0o040000


def remove_tree(path):
    if not _exists(path):
        return
    if _is_dir(path):
        for name in os.listdir(path):
            remove_tree(path + "/" + name)
        os.rmdir(path)
    else:
        os.remove(path)


class Scratch:
    """``with Scratch() as d:`` an empty directory, removed afterwards."""

    def __enter__(self):
        if tempfile is not None:
            self.path = tempfile.mkdtemp(prefix="cccd-fw-")
        else:
            _count[0] += 1
            self.path = "/fw-scratch-%d" % _count[0]
            remove_tree(self.path)
            os.mkdir(self.path)
        return self.path

    def __exit__(self, *exc):
        remove_tree(self.path)
        return False


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def copy_tree(src, dst):
    """A copy of the files of ``src`` (flat) in ``dst``, which is emptied first."""
    remove_tree(dst)
    os.mkdir(dst)
    for name in os.listdir(src):
        write(dst + "/" + name, read(src + "/" + name))


def truncate(path, size):
    write(path, read(path)[:size])


def segments(root):
    return sorted(n for n in os.listdir(root) if n.endswith(".seg"))


def raises(exc_type, fn, *args):
    try:
        fn(*args)
    except exc_type as exc:
        return exc
    raise AssertionError("expected %s" % exc_type.__name__)


class FakeUART:
    """A stand-in for ``machine.UART``: ``any()`` and ``read()`` over chunks queued by the test."""

    def __init__(self):
        self.chunks = []

    def send(self, data):
        self.chunks.append(bytes(data))

    def any(self):
        return sum(len(c) for c in self.chunks)

    def read(self, n=-1):
        if not self.chunks:
            return None
        data = b"".join(self.chunks)
        self.chunks = []
        return data


# -- asyncio without asyncio ------------------------------------------------------------------------
# The WebAssembly port's asyncio runs on JavaScript's event loop (no asyncio.run): a test cannot
# wait for it. The code under test only awaits its streams and an event, so these stand-ins and a
# round-robin driver run it to the end, the same under CPython and MicroPython.


class _Yield:
    def __iter__(self):
        yield None

    __await__ = __iter__


def pause():
    """An await point: the driver runs the other coroutines, then comes back."""
    return _Yield()


class Event:
    """``asyncio.Event``'s surface, for :func:`run`."""

    def __init__(self):
        self.flag = False

    def set(self):
        self.flag = True

    def clear(self):
        self.flag = False

    def is_set(self):
        return self.flag

    async def wait(self):
        while not self.flag:
            await pause()


ERRORS = []  # what the other coroutines of the last run() raised


def run(main, *others, steps=100000):
    """Drive ``main`` and ``others`` (coroutines) in turn until ``main`` ends; its result.

    An exception from ``main`` is raised; one from another coroutine ends that one and is kept in
    ``ERRORS``. Fails when ``main`` has not ended after ``steps`` rounds (a deadlock).
    """
    tasks = [main] + list(others)
    del ERRORS[:]
    for _ in range(steps):
        for task in list(tasks):
            try:
                task.send(None)
            except StopIteration as stop:
                tasks.remove(task)
                if task is main:
                    for other in tasks:
                        other.close()
                    return stop.value
            except Exception as exc:  # kept for the test to look at
                tasks.remove(task)
                if task is main:
                    for other in tasks:
                        other.close()
                    raise
                ERRORS.append(exc)
    raise AssertionError("coroutines still waiting after %d rounds" % steps)


class Pipe:
    """One direction of a connection: ``readexactly`` as asyncio's StreamReader has it."""

    def __init__(self):
        self.buf = b""
        self.closed = False

    def feed(self, data):
        self.buf += data

    def close(self):
        self.closed = True

    async def readexactly(self, n):
        while len(self.buf) < n:
            if self.closed:
                raise EOFError("closed")
            await pause()
        data = self.buf[:n]
        self.buf = self.buf[n:]
        return data


class FakeBroker:
    """The broker's end of one connection: it is the client's writer, and feeds its reader.

    Answers CONNACK (``refuse``: a return code), PUBACK to QoS 1 PUBLISH (not while ``silent``
    nor after ``ack_limit`` of them),
    SUBACK, PINGRESP; records what was published as (topic, payload, qos, retain, pid, dup).
    :meth:`cut` ends the connection both ways.
    """

    def __init__(self, refuse=0):
        self.reader = Pipe()  # what the client reads
        self.refuse = refuse
        self.silent = False
        self.ack_limit = None  # PUBACKs to send before falling silent (None: no limit)
        self.cut_off = False
        self.received = b""
        self.connects = []
        self.published = []
        self.subscribed = []
        self.held = []  # PUBACKs not sent while silent
        self.acked = []  # packet ids the client acknowledged (PUBACK)

    def cut(self):
        self.cut_off = True
        self.reader.close()

    def close(self):  # the client closing its writer
        self.cut()

    def write(self, data):
        if self.cut_off:
            raise OSError(104, "connection reset")
        self.received += data
        while True:
            parsed = _split_packet(self.received)
            if parsed is None:
                return
            kind, body, self.received = parsed
            self._answer(kind, body)

    async def drain(self):
        if self.cut_off:
            raise OSError(104, "connection reset")

    def send_publish(self, topic, payload, qos=1, pid=1):
        head = bytes([0x30 | (qos << 1)])
        t = topic.encode()
        body = bytes([len(t) >> 8, len(t) & 0xFF]) + t + (bytes([pid >> 8, pid & 0xFF]) if qos else b"")
        self.reader.feed(head + _remaining(len(body) + len(payload)) + body + payload)

    def _answer(self, kind, body):
        high = kind & 0xF0
        if high == 0x10:
            self.connects.append(body)
            self.reader.feed(bytes([0x20, 2, 0, self.refuse]))
        elif high == 0x30:
            qos = (kind >> 1) & 3
            n = body[0] << 8 | body[1]
            topic = body[2 : 2 + n].decode()
            pid = (body[2 + n] << 8 | body[3 + n]) if qos else 0
            payload = body[2 + n + (2 if qos else 0) :]
            self.published.append((topic, payload, qos, bool(kind & 1), pid, bool(kind & 8)))
            if qos:
                ack = bytes([0x40, 2, pid >> 8, pid & 0xFF])
                if self.silent or (self.ack_limit is not None and self.ack_limit <= 0):
                    self.held.append(ack)
                else:
                    if self.ack_limit is not None:
                        self.ack_limit -= 1
                    self.reader.feed(ack)
        elif high == 0x80:
            self.subscribed.append(body)
            self.reader.feed(bytes([0x90, 3]) + body[:2] + bytes([body[-1]]))
        elif high == 0xC0:
            self.reader.feed(b"\xd0\x00")
        elif high == 0x40:
            self.acked.append(body[0] << 8 | body[1])


def _remaining(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | 0x80 if n else b])
        if not n:
            return out


def _split_packet(data):
    if len(data) < 2:
        return None
    n = 0
    shift = 0
    i = 1
    while True:
        if i >= len(data):
            return None
        b = data[i]
        n |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            break
        shift += 7
    if len(data) < i + n:
        return None
    return data[0], data[i : i + n], data[i + n :]
