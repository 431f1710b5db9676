"""Vietnamese text helpers for the QR parser: NFC, whitespace, case, strict UTF-8 and mojibake repair.

Runs under CPython and MicroPython alike. MicroPython has no ``unicodedata``, its ``str.upper`` only
knows ASCII and its UTF-8 decoder accepts surrogates and overlong forms, so this module brings its own:

- ``nfc``: ``unicodedata.normalize("NFC")`` where it exists; otherwise ``nfc_fallback``, which composes
  the Vietnamese alphabet (a base letter followed by any of the eight Vietnamese combining marks, in
  any state of partial composition) exactly as NFC does, from the generated tables in ``_vntable``
  (see tools/gen_vn_table.py). Other sequences of base + combining mark pass through unchanged.
- ``collapse``: strip, and turn every run of Unicode white space into one space; ``strip_ws`` /
  ``strip_any``: strip by characters (MicroPython's ``str.strip(chars)`` works byte by byte and can
  cut a multi-byte character in two).
- ``upper_vn`` / ``lower_vn`` / ``fold``: case mapping of ASCII and the Vietnamese letters, for
  matching words such as "Nam" / "NỮ"; ``is_letter``, ``is_space``, ``is_control``.
- ``utf8_status`` / ``decode_utf8``: UTF-8 as RFC 3629 defines it (no surrogates, no overlong forms,
  nothing above U+10FFFF), with a cut-off last character told apart from garbage.
- ``repair_mojibake``: text whose UTF-8 bytes were shown as Latin-1 / Windows-1252 characters (what a
  keyboard-wedge scanner or a wrong code page produces), turned back into the text.
"""

from cccd._vntable import COMPOSED, MARK_ALIASES, MARK_CCC, MARKS, PAIRS, VN_LOWER, VN_UPPER

try:
    import unicodedata

    _HAVE_UNICODEDATA = True
except ImportError:  # MicroPython
    _HAVE_UNICODEDATA = False

# Unicode White_Space characters.
WHITESPACE = (
    " \t\n\r\x0b\x0c\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
# Invisible format characters: zero-width space/joiners, direction marks, embeddings, overrides and
# isolates, word joiner, invisible operators, byte order mark, soft hyphen.
INVISIBLE = (
    "\xad\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"
)
# Windows-1252 bytes 0x80..0x9F, one character each. The five bytes the code page leaves undefined
# (0x81, 0x8D, 0x8F, 0x90, 0x9D) stand for themselves, as they do when decoded as Latin-1.
CP1252_HIGH = (
    "\u20ac\x81\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\x8d\u017d\x8f"
    "\x90\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\x9d\u017e\u0178"
)
# Most rounds of repair: text can be mis-decoded more than once on its way (UTF-8 -> 1252 -> UTF-8 ...).
_MOJIBAKE_ROUNDS = 3


# ---------------------------------------------------------------------------------------------------
# NFC


def nfc(s: str) -> str:
    """``s`` in Unicode normalisation form C (composed)."""
    if _HAVE_UNICODEDATA:
        return unicodedata.normalize("NFC", s)
    return nfc_fallback(s)


def nfc_fallback(s: str) -> str:
    """NFC for the Vietnamese alphabet without ``unicodedata`` (what MicroPython runs)."""
    if not _has_mark(s):
        return s
    out: list[str] = []
    base = ""
    marks: list[str] = []
    for c in s:
        c = _unalias(c)
        if c in MARKS:
            marks.append(c)
        else:
            _flush(out, base, marks)
            base = c
            marks = []
    _flush(out, base, marks)
    return "".join(out)


def _has_mark(s: str) -> bool:
    for c in s:  # a loop: no generator object on MicroPython's heap
        if "\u0300" <= c <= "\u0341" and (c in MARKS or _unalias(c) != c):
            break
    else:
        return False
    return True


def _unalias(c: str) -> str:
    """The Vietnamese mark a singleton-decomposing code point (U+0340, U+0341) stands for."""
    i = MARK_ALIASES.find(c)
    if i >= 0 and i % 2 == 0:
        return MARK_ALIASES[i + 1]
    return c


def _ccc(mark: str) -> int:
    return MARK_CCC[MARKS.find(mark)]


def _decompose(c: str) -> tuple[str, list[str]]:
    """(base letter, its combining marks in canonical order) for one character."""
    marks: list[str] = []
    while True:
        i = COMPOSED.find(c)
        if i < 0:
            return c, marks
        pair = PAIRS[2 * i : 2 * i + 2]
        c = pair[0]
        marks.insert(0, pair[1])


def _compose(base: str, mark: str) -> str:
    """The precomposed letter for ``base`` + ``mark``, or "" when there is none."""
    j = PAIRS.find(base + mark)
    if j < 0 or j % 2:
        return ""
    return COMPOSED[j // 2]


def _sort_marks(marks: list[str]) -> None:
    """Canonical ordering: a stable sort by combining class (MicroPython's sort is not stable)."""
    for i in range(1, len(marks)):
        m = marks[i]
        k = _ccc(m)
        j = i - 1
        while j >= 0 and _ccc(marks[j]) > k:
            marks[j + 1] = marks[j]
            j -= 1
        marks[j + 1] = m


def _flush(out: list[str], base: str, marks: list[str]) -> None:
    """Append ``base`` and its following ``marks``, canonically ordered and composed."""
    if not marks:
        if base:
            out.append(base)
        return
    root, seq = _decompose(base) if base else ("", [])
    seq.extend(marks)
    _sort_marks(seq)
    if not root:
        out.append("".join(seq))
        return
    current = root
    left: list[str] = []
    for mark in seq:
        # A mark composes unless an uncomposed mark of the same or higher class stands between.
        if not left or _ccc(left[-1]) < _ccc(mark):
            composed = _compose(current, mark)
            if composed:
                current = composed
                continue
        left.append(mark)
    out.append(current)
    out.extend(left)


# ---------------------------------------------------------------------------------------------------
# White space and case


def is_space(c: str) -> bool:
    """Whether ``c`` is Unicode white space."""
    return c in WHITESPACE


def strip_any(s: str, chars: str) -> str:
    """``s`` without the characters of ``chars`` at either end. (MicroPython's ``str.strip(chars)``
    works byte by byte and can cut a multi-byte character in two.)"""
    if not s or (s[0] not in chars and s[-1] not in chars):
        return s
    cs = list(s)
    i = 0
    j = len(cs)
    while i < j and cs[i] in chars:
        i += 1
    while j > i and cs[j - 1] in chars:
        j -= 1
    return "".join(cs[i:j])


def strip_ws(s: str) -> str:
    """``s`` without white space at either end."""
    return strip_any(s, WHITESPACE)


def collapse(s: str) -> str:
    """``s`` stripped, with every run of white space made one ASCII space."""
    if _is_collapsed(s):
        return s
    spaced = "".join([" " if c in WHITESPACE else c for c in s])
    return " ".join([word for word in spaced.split(" ") if word])


def _is_collapsed(s: str) -> bool:
    """Whether ``s`` is non-empty, stripped and has no white space but single ASCII spaces."""
    prev = " "
    for c in s:
        if c in WHITESPACE and (c != " " or prev == " "):
            return False
        prev = c
    return prev != " "


def _recase(s: str, src: str, dst: str, upper: bool) -> str:
    """ASCII by str's own method; Vietnamese letters by position in ``src`` -> ``dst``."""
    out = []
    for c in s:
        if c < "\x80":
            out.append(c.upper() if upper else c.lower())
        else:
            i = src.find(c)
            out.append(dst[i] if i >= 0 else c)
    return "".join(out)


def upper_vn(s: str) -> str:
    """``s`` with ASCII and Vietnamese letters in upper case (other characters unchanged)."""
    return _recase(s, VN_LOWER, VN_UPPER, True)


def lower_vn(s: str) -> str:
    """``s`` with ASCII and Vietnamese letters in lower case (other characters unchanged)."""
    return _recase(s, VN_UPPER, VN_LOWER, False)


def fold(s: str) -> str:
    """The form two Vietnamese words are compared in: NFC, white space collapsed, upper case."""
    return upper_vn(collapse(nfc(s)))


def is_letter(c: str) -> bool:
    """Whether ``c`` is a Latin letter: ASCII, Vietnamese, Latin-1 and Latin Extended A/B/Additional."""
    if c < "\x80":
        return "a" <= c <= "z" or "A" <= c <= "Z"
    if c in VN_LOWER or c in VN_UPPER:
        return True
    o = ord(c)
    return (0xC0 <= o <= 0x24F and o not in (0xD7, 0xF7)) or 0x1E00 <= o <= 0x1EFF


def is_control(c: str) -> bool:
    """Whether ``c`` is a C0 or C1 control character or DEL (tab, CR and LF included)."""
    return c < " " or "\x7f" <= c <= "\x9f"


# ---------------------------------------------------------------------------------------------------
# UTF-8


def utf8_status(data: bytes) -> int:
    """0 when ``data`` is well-formed UTF-8; 1 when it is except for a character cut off at the end;
    2 when it is not UTF-8."""
    i = 0
    n = len(data)
    while i < n:
        lead = data[i]
        if lead < 0x80:
            i += 1
            continue
        need, low, high = _utf8_lead(lead)
        if not need:
            return 2
        for k in range(1, need + 1):
            if i + k >= n:
                return 1
            byte = data[i + k]
            if k == 1 and not low <= byte <= high:
                return 2
            if k > 1 and not 0x80 <= byte <= 0xBF:
                return 2
        i += need + 1
    return 0


def _utf8_lead(lead: int) -> tuple[int, int, int]:
    """(continuation bytes needed, range of the first one) for a lead byte; need 0 when invalid."""
    if 0xC2 <= lead <= 0xDF:
        return 1, 0x80, 0xBF
    if lead == 0xE0:
        return 2, 0xA0, 0xBF
    if lead == 0xED:
        return 2, 0x80, 0x9F
    if 0xE1 <= lead <= 0xEF:
        return 2, 0x80, 0xBF
    if lead == 0xF0:
        return 3, 0x90, 0xBF
    if 0xF1 <= lead <= 0xF3:
        return 3, 0x80, 0xBF
    if lead == 0xF4:
        return 3, 0x80, 0x8F
    return 0, 0, 0


def decode_utf8(data: bytes) -> str | None:
    """``data`` decoded as well-formed UTF-8, or None."""
    if utf8_status(data):
        return None
    return data.decode("utf-8")


# ---------------------------------------------------------------------------------------------------
# Mojibake


def byte_of(c: str) -> int:
    """The byte that Latin-1 / Windows-1252 shows as ``c``, or -1."""
    o = ord(c)
    if o < 0x100:
        return o
    i = CP1252_HIGH.find(c)
    return 0x80 + i if i >= 0 else -1


def looks_mojibake(s: str) -> bool:
    """Whether ``s`` shows the mark of UTF-8 read as Latin-1/1252: a lead byte's character (Â..ô)
    right before a continuation byte's (0x80..0xBF)."""
    prev = ""
    for c in s:
        if "\xc2" <= prev <= "\xf4" and 0x80 <= byte_of(c) <= 0xBF:
            return True
        prev = c
    return False


def _as_bytes(s: str) -> bytes | None:
    out = bytearray()
    for c in s:
        b = byte_of(c)
        if b < 0:
            return None
        out.append(b)
    return bytes(out)


def _clean_result(s: str) -> bool:
    """Whether repaired text is plausible: non-ASCII, no mojibake left, no C1 controls."""
    if looks_mojibake(s):
        return False
    non_ascii = False
    for c in s:
        if "\x80" <= c <= "\x9f":
            return False
        if c >= "\x80":
            non_ascii = True
    return non_ascii


def repair_mojibake(s: str) -> tuple[str, bool]:
    """(repaired text, True) when ``s`` is UTF-8 shown as Latin-1/1252 characters; else (s, False).

    Correct Vietnamese text is never touched: it has letters outside Latin-1 (ế, ư, đ, ...), which
    have no byte to map back to, or it does not form UTF-8 when read back as bytes.
    """
    if not looks_mojibake(s):
        return s, False
    text = s
    for _ in range(_MOJIBAKE_ROUNDS):
        data = _as_bytes(text)
        if data is None:
            break
        decoded = decode_utf8(data)
        if decoded is None:
            break
        text = decoded
        if not looks_mojibake(text):
            break
    if text == s or not _clean_result(text):
        return s, False
    return text, True
