"""The counter's lights and buzzer on the Pi's GPIO (gpiozero): green, amber, red, one at a time.

What the receptionist sees, besides the text: amber while a scan is checked, then green (insured
visit), amber (a warning, or the answer still pending) or red (refused, an error, a forged chip, a
QR code that is no use). Green beeps once, red three times. ``Lights.show(level)`` is what the agent
calls; without GPIO (a desktop, the tests) pass ``gpiozero``'s mock pin factory.
"""

from __future__ import annotations

from typing import Any

LEVELS = ("green", "amber", "red")
# a Result's status -> the light
STATUS_LEVEL = {"ok": "green", "warn": "amber", "pending": "amber", "reject": "red", "error": "red"}
_BEEPS = {"green": 1, "amber": 0, "red": 3}


class Lights:
    """Three LEDs and a buzzer on BCM pins (defaults: the wiring of docs/AGENT.md)."""

    def __init__(
        self,
        green: int = 17,
        amber: int = 27,
        red: int = 22,
        buzzer: int | None = 23,
        pin_factory: Any = None,
    ) -> None:
        from gpiozero import LED, Buzzer  # noqa: PLC0415  (the agent extra, on a Pi)

        self.leds = {
            "green": LED(green, pin_factory=pin_factory),
            "amber": LED(amber, pin_factory=pin_factory),
            "red": LED(red, pin_factory=pin_factory),
        }
        self.buzzer = Buzzer(buzzer, pin_factory=pin_factory) if buzzer is not None else None
        self.level: str | None = None
        self.beeps = 0

    def show(self, level: str) -> None:
        if level not in LEVELS:
            raise ValueError(f"no light {level!r}")
        for name, led in self.leds.items():
            led.value = name == level
        self.level = level
        n = _BEEPS[level]
        if n and self.buzzer is not None:
            self.buzzer.beep(on_time=0.08, off_time=0.08, n=n, background=True)
            self.beeps += n

    def close(self) -> None:
        for led in self.leds.values():
            led.close()
        if self.buzzer is not None:
            self.buzzer.close()
