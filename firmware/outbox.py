"""The node's outbox in flash: sealed reads kept until the broker has them (PUBACK).

An append-only log split into segment files in one directory (``root``)::

    00000001.seg  00000002.seg  ...   records, oldest first
    ack                               "<segment> <offset> <dropped>\\n": the first unacknowledged
                                      record, and the reads ever dropped (written to ack.tmp,
                                      then renamed over ack)

A record is a 16-byte header and the payload (a sealed envelope)::

    magic b"OB" | length u16 | seq u64 | crc32 u32      (big-endian)

with the CRC32 (``binascii.crc32``) over the header's first 12 bytes and the payload. Power can
fail in the middle of any write: recovery (the constructor) reads every segment and stops a
segment at its first record that is short, has a wrong magic, a length out of range or a wrong
CRC. Records before it are kept; the rest of that segment is skipped and counted in
``corrupt``; nothing is ever appended after a bad record (the next append opens a new segment),
so a torn write can only ever cost the record being written, never an earlier one.

Bounded: at most ``capacity // segment_size`` segments. When a new segment is needed and none
is free, the oldest segment is deleted with whatever it still held: those reads are counted in
``dropped`` (persisted in the ack file) and ``dropped_since_boot`` (telemetry's ``drop``).
Capacity with the defaults (1 MiB, 16 KiB segments) and a typical Read (a 314-byte envelope,
330 bytes with its header): 49 records per segment, 64 segments, 3,136 reads before the first
drop and never fewer than 3,087 kept (63 full segments) after one. Smaller segments would drop
fewer reads at a time; each costs a file and a scan at boot.

Delivered in order: :meth:`peek` / :meth:`pending` read from the first unacknowledged record;
:meth:`ack` removes a record only when the broker acknowledged it. Acknowledgements may arrive
out of order (several publishes in flight); the pointer moves over the acknowledged prefix only.
A power cut before the pointer is written redelivers the record: the collector keeps
``(facility, device, seq)`` unique, so a duplicate changes nothing.

MicroPython and CPython alike: only ``os``, ``open``, ``struct`` and ``binascii``.
"""

import os
import struct
from binascii import crc32

_MAGIC = b"OB"
_HEADER = ">2sHQI"
HEADER_SIZE = 16
SEGMENT_SIZE = 16 * 1024
CAPACITY = 1024 * 1024
MAX_RECORD = 2048  # a sealed Read is about 300-600 bytes
_SUFFIX = ".seg"
_ACK = "ack"


def _crc(header, payload):
    return crc32(payload, crc32(header[:12])) & 0xFFFFFFFF


def _segment_number(name):
    if len(name) != 8 + len(_SUFFIX) or not name.endswith(_SUFFIX):
        return None
    digits = name[:8]
    for c in digits:
        if not "0" <= c <= "9":
            return None
    return int(digits)


def write_atomic(path, text):
    """Write ``text`` to ``path`` so that a power cut leaves either the old or the new content.

    The text goes to ``path + ".tmp"``, which is then renamed over ``path`` (atomic on LittleFS;
    on FAT MicroPython's rename refuses an existing target, so the target is removed first and a
    reader falls back on the ``.tmp`` file: see :func:`read_atomic`).
    """
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
    try:
        os.rename(tmp, path)
    except OSError:
        os.remove(path)
        os.rename(tmp, path)


def read_atomic(path, parse, limit=64):
    """What :func:`write_atomic` last wrote completely (at most ``limit`` characters are read),
    parsed by ``parse`` (None when invalid).

    A complete ``.tmp`` file is newer than the target (it is renamed away as soon as it is
    written), so it wins; a torn one fails ``parse`` and the target is used.
    """
    for candidate in (path + ".tmp", path):
        try:
            with open(candidate) as f:
                text = f.read(limit)
        except (OSError, UnicodeError):
            continue
        value = parse(text)
        if value is not None:
            return value
    return None


def _parse_ack(text):
    if not text.endswith("\n"):
        return None
    parts = text.split()
    if len(parts) != 3:
        return None
    try:
        values = [int(p) for p in parts]
    except ValueError:
        return None
    for v in values:
        if v < 0:
            return None
    return values


class Outbox:
    """The outbox in the directory ``root`` (created if missing); recovers what is there."""

    def __init__(self, root, segment_size=SEGMENT_SIZE, capacity=CAPACITY, max_record=MAX_RECORD):
        if max_record + HEADER_SIZE > segment_size or capacity < 2 * segment_size:
            raise ValueError("outbox: a segment must hold a record and the outbox two segments")
        self.root = root
        self.segment_size = segment_size
        self.max_segments = capacity // segment_size
        self.max_record = max_record
        self.dropped = 0  # reads dropped (oldest first, outbox full), ever: persisted
        self.dropped_since_boot = 0
        self.corrupt = 0  # bad records or garbage found (a torn write, bit rot, a stray file)
        self.last_seq = -1  # the highest sequence number in the outbox, -1 when none ever seen
        self._segs = []  # segment numbers, oldest first
        self._ends = {}  # segment → offset after its last valid record
        self._live = {}  # segment → records not yet acknowledged
        self._head_seg = 0
        self._head_off = 0
        self._early = set()  # sequence numbers acknowledged ahead of the head
        self._file = None  # the segment open for appending
        self._appendable = False  # False: the next append opens a new segment
        try:
            os.mkdir(root)
        except OSError:
            pass
        self._recover()

    # -- public -------------------------------------------------------------------------------

    def __len__(self):
        """Records not yet acknowledged."""
        n = 0
        for seg in self._segs:
            n += self._live[seg]
        return n

    def append(self, seq, payload):
        """Store one sealed read; it is in flash when this returns. Drops the oldest if full."""
        n = len(payload)
        if n == 0 or n > self.max_record:
            raise ValueError("outbox: record of %d bytes (1..%d)" % (n, self.max_record))
        size = HEADER_SIZE + n
        if not self._appendable or self._ends[self._segs[-1]] + size > self.segment_size:
            self._roll()
        header = bytearray(HEADER_SIZE)
        struct.pack_into(_HEADER, header, 0, _MAGIC, n, seq, 0)
        struct.pack_into(">I", header, 12, _crc(header, payload))
        f = self._file
        f.write(header)
        f.write(payload)
        f.flush()
        seg = self._segs[-1]
        self._ends[seg] += size
        self._live[seg] += 1
        self.last_seq = max(self.last_seq, seq)

    def peek(self):
        """The oldest unacknowledged record as ``(seq, payload)``, or None when empty."""
        records = self.pending(1)
        return records[0] if records else None

    def pending(self, limit):
        """Up to ``limit`` unacknowledged records, oldest first, as ``(seq, payload)`` pairs.

        Records already acknowledged out of order are left out.
        """
        out = []
        self._settle()
        seg, off = self._head_seg, self._head_off
        i = self._segs.index(seg) if seg in self._segs else len(self._segs)
        while len(out) < limit and i < len(self._segs):
            seg = self._segs[i]
            end = self._ends[seg]
            if off >= end:
                i += 1
                off = 0
                continue
            record = self._read_at(seg, off, True)
            if record is None:
                self._cut(seg, off)
                continue
            seq, payload = record
            if seq not in self._early:
                out.append((seq, payload))
            off += HEADER_SIZE + len(payload)
        return out

    def ack(self, seq):
        """The broker has the record ``seq`` (PUBACK): remove it once every older one is gone too."""
        self._early.add(seq)
        moved = False
        while True:
            self._settle()
            if not self._segs or self._head_off >= self._ends[self._head_seg]:
                break
            record = self._read_at(self._head_seg, self._head_off, False)
            if record is None:
                self._cut(self._head_seg, self._head_off)
                continue
            head_seq, n = record
            if head_seq not in self._early:
                break
            self._early.discard(head_seq)
            self._head_off += HEADER_SIZE + n
            self._live[self._head_seg] -= 1
            moved = True
        if len(self._early) > 64:  # acknowledgements of records no longer here (dropped)
            self._early = set()
        if moved:
            self._settle()
            self._save_pointer()
            self._delete_acked()

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- segments -----------------------------------------------------------------------------

    def _path(self, seg):
        return "%s/%08d%s" % (self.root, seg, _SUFFIX)

    def _roll(self):
        """Start a new segment, dropping the oldest when the outbox is full."""
        self.close()
        # Past the pointer's segment too: a new segment must not inherit a stale pointer's offset.
        seg = self._segs[-1] + 1 if self._segs else self._head_seg + 1
        while len(self._segs) >= self.max_segments:
            self._drop_oldest()
        self._file = open(self._path(seg), "wb")  # noqa: SIM115 - kept open for appends
        self._segs.append(seg)
        self._ends[seg] = 0
        self._live[seg] = 0
        self._appendable = True
        if len(self._segs) == 1:
            self._head_seg, self._head_off = seg, 0

    def _drop_oldest(self):
        oldest = self._segs.pop(0)
        lost = self._live.pop(oldest)
        del self._ends[oldest]
        self.dropped += lost
        self.dropped_since_boot += lost
        if self._head_seg <= oldest:
            self._head_seg = self._segs[0] if self._segs else oldest + 1
            self._head_off = 0
        self._save_pointer()  # before the delete: a cut in between finds the segment behind the pointer
        self._remove(oldest)

    def _settle(self):
        """Move the head over fully read segments to the next segment, if there is one."""
        while self._segs:
            seg = self._head_seg
            if seg not in self._ends:
                self._head_seg, self._head_off = self._segs[0], 0
                continue
            if self._head_off < self._ends[seg] or seg == self._segs[-1]:
                return
            self._head_seg, self._head_off = self._segs[self._segs.index(seg) + 1], 0

    def _delete_acked(self):
        while len(self._segs) > 1 and self._segs[0] < self._head_seg:
            seg = self._segs.pop(0)
            del self._ends[seg]
            del self._live[seg]
            self._remove(seg)

    def _cut(self, seg, off):
        """The record at ``off`` went bad since recovery: skip the rest of the segment."""
        self.corrupt += 1
        live = 0
        pos = self._head_off if seg == self._head_seg else 0
        while pos < off:
            record = self._read_at(seg, pos, False)
            if record is None:
                break
            live += 1
            pos += HEADER_SIZE + record[1]
        self._live[seg] = live
        self._ends[seg] = off
        if seg == self._segs[-1]:
            self.close()
            self._appendable = False

    def _remove(self, seg):
        try:
            os.remove(self._path(seg))
        except OSError:
            pass

    # -- records ------------------------------------------------------------------------------

    def _read_at(self, seg, off, with_payload):
        """``(seq, payload)`` (or ``(seq, length)``) of the valid record at ``off``, else None."""
        try:
            with open(self._path(seg), "rb") as f:
                f.seek(off)
                header = f.read(HEADER_SIZE)
                parsed = self._check_header(header)
                if parsed is None:
                    return None
                n, seq, crc = parsed
                payload = f.read(n)
        except OSError:
            return None
        if len(payload) != n or _crc(header, payload) != crc:
            return None
        return (seq, payload) if with_payload else (seq, n)

    def _check_header(self, header):
        if len(header) != HEADER_SIZE:
            return None
        magic, n, seq, crc = struct.unpack(_HEADER, header)
        if magic != _MAGIC or n == 0 or n > self.max_record:
            return None
        return n, seq, crc

    def _scan(self, seg, buf):
        """Read a whole segment: (valid end, [(offset, seq)...], clean). One buffer for payloads."""
        found = []
        off = 0
        view = memoryview(buf)
        with open(self._path(seg), "rb") as f:
            while True:
                header = f.read(HEADER_SIZE)
                if not header:
                    return off, found, True
                parsed = self._check_header(header)
                if parsed is None:
                    return off, found, False
                n, seq, crc = parsed
                if f.readinto(view[:n]) != n or _crc(header, view[:n]) != crc:
                    return off, found, False
                found.append((off, seq))
                off += HEADER_SIZE + n

    # -- recovery -----------------------------------------------------------------------------

    def _recover(self):
        pointer = read_atomic(self.root + "/" + _ACK, _parse_ack)
        if pointer is None:
            pointer = [0, 0, 0]
        head_seg, head_off, self.dropped = pointer
        segs = []
        for name in os.listdir(self.root):
            seg = _segment_number(name)
            if seg is not None:
                segs.append(seg)
        segs.sort()
        buf = bytearray(self.max_record)
        tail_clean = True
        for seg in segs:
            if seg < head_seg:
                self._remove(seg)  # acknowledged before the cut; the delete did not happen
                continue
            try:
                end, found, clean = self._scan(seg, buf)
            except OSError:
                end, found, clean = 0, [], False
            if not clean:
                self.corrupt += 1
            if not found and seg != head_seg:
                self._remove(seg)  # nothing valid in it: a stray or torn file
                continue
            live = 0
            for off, _ in found:
                if seg == head_seg and off < head_off:
                    continue
                if live == 0 and seg == head_seg:
                    head_off = off  # a pointer between records (hostile) snaps to the next one
                live += 1
            for _, seq in found:
                self.last_seq = max(self.last_seq, seq)
            if seg == head_seg and live == 0:
                head_off = end
            self._segs.append(seg)
            self._ends[seg] = end
            self._live[seg] = live
            tail_clean = clean
        buf = None
        if self._segs and (head_seg < self._segs[0] or head_seg not in self._ends):
            head_seg, head_off = self._segs[0], 0
        self._head_seg, self._head_off = head_seg, head_off
        self._settle()
        if pointer[:2] != [self._head_seg, self._head_off] and pointer != [0, 0, 0]:
            # A pointer that had to be moved (past the end, between records, at a lost segment)
            # is written now: records appended after it must never count as acknowledged.
            self._save_pointer()
        if self._segs and tail_clean and self._ends[self._segs[-1]] < self.segment_size:
            self._file = open(self._path(self._segs[-1]), "ab")  # noqa: SIM115 - kept open
            self._appendable = True
        self._delete_acked()

    def _save_pointer(self):
        write_atomic(self.root + "/" + _ACK, "%d %d %d\n" % (self._head_seg, self._head_off, self.dropped))
