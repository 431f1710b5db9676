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
