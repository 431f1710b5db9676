"""HTML from the templates in ``templates/``: Jinja2 with autoescaping always on, so a stored value
(a site name, a device id, a dead letter's reason) is text on the page, never markup.

Numbers and times are shown the Vietnamese way: a decimal comma, a dot between thousands,
``dd/mm/yyyy HH:MM`` in the facility's time zone (UTC+7).
"""

import datetime
import unicodedata
from typing import Any

import jinja2

from collector import fleet

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("collector.web", "templates"),
    autoescape=True,  # every template, whatever its name
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def number(value: float, decimals: int = 0) -> str:
    """1234567.5 -> '1.234.567,5' (Vietnamese separators)."""
    text = f"{value:,.{decimals}f}"
    return text.replace(",", " ").replace(".", ",").replace(" ", ".")


def percent(ratio: float, decimals: int = 1) -> str:
    """0.9876 -> '98,8 %'."""
    return number(100.0 * ratio, decimals) + " %"


def when(ts: float | None, fmt: str = "%d/%m/%Y %H:%M") -> str:
    """Unix time in the facility's time zone; '—' for none."""
    if ts is None:
        return "—"
    return datetime.datetime.fromtimestamp(ts, fleet.FACILITY_TZ).strftime(fmt)


def ago(seconds: float) -> str:
    """A duration the way a person says it: '45 giây', '12 phút', '3 giờ 5 phút', '2 ngày 4 giờ'."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} giây"
    if s < 3600:
        return f"{s // 60} phút"
    if s < 86400:
        hours, minutes = divmod(s // 60, 60)
        return f"{hours} giờ" + (f" {minutes} phút" if minutes else "")
    days, hours = divmod(s // 3600, 24)
    return f"{days} ngày" + (f" {hours} giờ" if hours else "")


_ENV.filters.update(number=number, percent=percent, when=when, ago=ago)


def page(template: str, **context: Any) -> bytes:
    """A rendered page, UTF-8, its text NFC (labels and stored values alike)."""
    html = _ENV.get_template(template).render(**context)
    return unicodedata.normalize("NFC", html).encode("utf-8")


# Labels of the values the store keeps as codes.
STATES = {fleet.ONLINE: "Trực tuyến", fleet.OFFLINE: "Mất kết nối", fleet.NEVER_SEEN: "Chưa kết nối"}
KINDS = {"esp32": "ESP32", "rpi": "Raspberry Pi"}
READERS = {fleet.READER_QR: "QR", fleet.READER_CHIP: "Chip (NFC)"}
JOB_KINDS = {"insurance": "Kiểm tra BHYT", "his": "Đăng ký HIS"}

_ENV.globals.update(STATES=STATES, KINDS=KINDS, READERS=READERS, JOB_KINDS=JOB_KINDS)
BHXH_CODES = {
    "054": "CCCD của cán bộ tra cứu chưa được đăng ký với cơ sở KCB",
    "055": "Họ tên cán bộ tra cứu không khớp với số CCCD đã đăng ký",
}
_ENV.globals.update(BHXH_CODES=BHXH_CODES)
