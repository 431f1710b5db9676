"""tests/firmware: the ESP32 firmware's tests, run under CPython (pytest) AND MicroPython (the tier).

Rules as for tests/core: plain ``def test_*()`` functions with no arguments, ``assert`` and
``fwcheck``'s helpers; import only ``firmware``, ``cccd`` and what MicroPython has. Under
MicroPython the firmware is at /lib/firmware, as on the device; here the repository root goes on
``sys.path`` so that ``import firmware`` finds it (firmware/ is not part of the Python package).
"""

import sys
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)
