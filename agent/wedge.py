"""QR scanners that type (USB keyboard wedge), read through evdev so the text never reaches a
console: key events in, scanned codes out.

A wedge scanner types ASCII with the US layout; a byte it cannot type it sends as Alt + the keypad
digits of its code (Alt+0195 for 0xC3), which is how UTF-8 Vietnamese arrives. A desktop would turn
those into Windows-1252 characters (mojibake: ``Nguyá»…n``); ``KeyDecoder`` turns them back into
the very bytes the scanner read, so the layout mangles nothing (and ``cccd.qr`` still repairs codes
a scanner mangled itself). A code ends at Enter. ``WedgeScanner`` reads a grabbed evdev device (the
``evdev`` package, imported only there) and hands codes to ``SerialScanner.handle``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

# Linux input event codes (linux/input-event-codes.h)
KEY_ENTER, KEY_KPENTER, KEY_LEFTSHIFT, KEY_RIGHTSHIFT, KEY_LEFTALT, KEY_RIGHTALT = 28, 96, 42, 54, 56, 100
_KEYPAD = {82: 0, 79: 1, 80: 2, 81: 3, 75: 4, 76: 5, 77: 6, 71: 7, 72: 8, 73: 9}
_ROWS = {  # US layout: key code -> (plain, shifted)
    2: "1!", 3: "2@", 4: "3#", 5: "4$", 6: "5%", 7: "6^", 8: "7&", 9: "8*", 10: "9(", 11: "0)",
    12: "-_", 13: "=+", 16: "qQ", 17: "wW", 18: "eE", 19: "rR", 20: "tT", 21: "yY", 22: "uU",
    23: "iI", 24: "oO", 25: "pP", 26: "[{", 27: "]}", 30: "aA", 31: "sS", 32: "dD", 33: "fF",
    34: "gG", 35: "hH", 36: "jJ", 37: "kK", 38: "lL", 39: ";:", 40: "'\"", 41: "`~", 43: "\\|",
    44: "zZ", 45: "xX", 46: "cC", 47: "vV", 48: "bB", 49: "nN", 50: "mM", 51: ",<", 52: ".>",
    53: "/?", 57: "  ",
}  # fmt: skip
KEYMAP = {code: (chars[0], chars[1]) for code, chars in _ROWS.items()}
US_KEYS = {plain: (code, False) for code, (plain, _) in KEYMAP.items()} | {
    shifted: (code, True) for code, (_, shifted) in KEYMAP.items() if shifted != " "
}
MAX_CODE = 4096


class KeyDecoder:
    """Key events (code, value: 1 down, 0 up, 2 repeat) in; whole codes (bytes) out at Enter."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._shift = self._alt = False
        self._digits = ""

    def feed(self, code: int, value: int) -> bytes | None:
        if code in (KEY_LEFTSHIFT, KEY_RIGHTSHIFT):
            self._shift = value != 0
        elif code in (KEY_LEFTALT, KEY_RIGHTALT):
            self._alt = value != 0
            if value == 0 and self._digits:  # Alt released: the keypad digits were one byte
                self._buf.append(int(self._digits) % 256)
                self._digits = ""
        elif value != 1:
            return None
        elif code in (KEY_ENTER, KEY_KPENTER):
            out, self._buf = bytes(self._buf), bytearray()
            return out or None
        elif self._alt and code in _KEYPAD:
            self._digits += str(_KEYPAD[code])
        elif code in KEYMAP and len(self._buf) < MAX_CODE:
            self._buf += KEYMAP[code][self._shift].encode("ascii")
        return None


def keystrokes(data: bytes) -> list[tuple[int, int]]:
    """The events a wedge scanner sends for ``data`` (tests and the simulator): ASCII typed on the US
    layout, every other byte as Alt + keypad 0nnn, then Enter."""
    keypad = {digit: code for code, digit in _KEYPAD.items()}
    events: list[tuple[int, int]] = []
    for byte in data:
        ch = chr(byte)
        if byte < 0x80 and ch in US_KEYS:
            code, shifted = US_KEYS[ch]
            events += [(KEY_LEFTSHIFT, 1)] if shifted else []
            events += [(code, 1), (code, 0)]
            events += [(KEY_LEFTSHIFT, 0)] if shifted else []
        else:
            events.append((KEY_LEFTALT, 1))
            for digit in f"0{byte:03d}":
                events += [(keypad[int(digit)], 1), (keypad[int(digit)], 0)]
            events.append((KEY_LEFTALT, 0))
    return [*events, (KEY_ENTER, 1), (KEY_ENTER, 0)]


class WedgeScanner:
    """A keyboard-wedge scanner at ``device`` (e.g. /dev/input/by-id/usb-...-event-kbd), grabbed so
    its typing goes nowhere else; every code to ``handle`` (``SerialScanner.handle``)."""

    def __init__(self, device: str, handle: Callable[[bytes], object]) -> None:
        self.device, self.handle = device, handle
        self.decoder = KeyDecoder()

    async def run(self) -> None:
        import evdev  # noqa: PLC0415  (only on a node with a wedge scanner)

        dev = evdev.InputDevice(self.device)
        dev.grab()
        try:
            async for event in dev.async_read_loop():
                if event.type == evdev.ecodes.EV_KEY:
                    code = self.decoder.feed(event.code, event.value)
                    if code is not None:
                        self.handle(code)
                await asyncio.sleep(0)
        finally:
            dev.ungrab()
