"""HTML from the templates in ``templates/``: Jinja2 with autoescaping always on, so a stored value
(a site name, a device id, a dead letter's reason) is text on the page, never markup.

Numbers and times are shown the Vietnamese way: a decimal comma, a dot between thousands,
``dd/mm/yyyy HH:MM`` in the facility's time zone (UTC+7).
"""

import datetime
import math
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2

from collector import fleet, stats
from collector.forward import insurance

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

DOCS = {"cccd": "CCCD gắn chip", "cancuoc": "Thẻ Căn cước", "vneid": "VNeID", "bhyt": "Thẻ BHYT"}
OUTCOMES = {
    "insured_cccd": "Có BHYT, tiếp đón bằng CCCD/VNeID",
    "fallback": "Không có thông tin BHYT hợp lệ: chuyển sang thẻ BHYT + giấy tờ",
    "bhyt_card": "Người bệnh xuất trình thẻ BHYT",
    "pending": "Đang chờ BHXH trả lời",
    "dead": "Không nhận được trả lời của BHXH",
    "unchecked": "Không kiểm tra BHYT (chưa cấu hình [bhxh])",
}
REJECT_REASONS = {
    "too_large": "Bản tin quá lớn",
    "malformed": "Bản tin hỏng",
    "alg": "Sai thuật toán mã hóa",
    "header": "Sai tiêu đề mã hóa",
    "kid": "Mã thiết bị không khớp chủ đề",
    "unknown_kid": "Thiết bị lạ hoặc đã bị thu hồi",
    "tag": "Bản tin bị sửa đổi hoặc sai khóa",
    "envelope": "Sai phong bì mã hóa",
    "schema": "Sai cấu trúc dữ liệu",
    "topic": "Sai chủ đề MQTT",
    "cbor": "Sai mã hóa CBOR",
    "missing": "Thiếu trường bắt buộc",
    "type": "Sai kiểu dữ liệu",
    "value": "Giá trị không hợp lệ",
    "version": "Phiên bản không hỗ trợ",
    "duplicate": "Gửi trùng (đã lưu trước đó)",
    "unknown_device": "Thiết bị chưa được cấp phép",
    "seq_mismatch": "Sai số thứ tự",
    "internal": "Lỗi nội bộ của bộ thu thập",
}


def bhxh_code(code: str) -> str:
    """What a BHXH maKetQua means, as the counter's display says it (its first line)."""
    if not code:
        return "Thiếu thông tin để tra cứu"
    return BHXH_CODES.get(code) or insurance.verdict({"maKetQua": code}).text.split("\n")[0]


_ENV.globals.update(DOCS=DOCS, OUTCOMES=OUTCOMES, REJECT_REASONS=REJECT_REASONS, bhxh_code=bhxh_code)


# --- bar charts (inline SVG: no script, no image files) -----------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    label: str  # under the bar ('' for none)
    title: str  # the tooltip


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int  # the plot's left edge (the scale's labels are left of it)
    base: int  # the plot's baseline
    top: int  # the scale's largest value, at the plot's top
    bars: tuple[Bar, ...]


_PLOT = 160  # plot height, px
_SLOT = 26  # px per bar
_LEFT = 44
_TOP = 12


def _nice(value: int) -> int:
    """The smallest of 1, 2, 5 x 10^k that is >= value (at least 1)."""
    if value <= 1:
        return 1
    power = int(10 ** int(math.log10(value)))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)


def bar_chart(
    buckets: Sequence[stats.Bucket],
    label: Callable[[stats.Bucket, int], str],
    title: Callable[[stats.Bucket], str],
) -> Chart:
    """A chart of reads per bucket; ``label(bucket, index)`` names a bar ('' to leave it out)."""
    top = _nice(max((b.reads for b in buckets), default=0))
    bars = []
    for i, b in enumerate(buckets):
        height = _PLOT * b.reads / top
        bars.append(
            Bar(
                _LEFT + i * _SLOT + 3,
                _TOP + _PLOT - height,
                _SLOT - 6,
                height,
                b.reads,
                label(b, i),
                f"{title(b)}: {number(b.reads)} lượt đọc",
            )
        )
    return Chart(_LEFT + len(buckets) * _SLOT + 8, _TOP + _PLOT + 24, _LEFT, _TOP + _PLOT, top, tuple(bars))


def hour_chart(buckets: Sequence[stats.Bucket]) -> Chart:
    def label(b: stats.Bucket, i: int) -> str:
        return when(b.start, "%Hh") if i % 3 == 0 else ""

    return bar_chart(buckets, label, lambda b: when(b.start, "%H:%M") + "–" + when(b.end, "%H:%M"))


def day_chart(buckets: Sequence[stats.Bucket]) -> Chart:
    def label(b: stats.Bucket, i: int) -> str:
        return when(b.start, "%d/%m") if (len(buckets) - 1 - i) % 5 == 0 else ""

    return bar_chart(buckets, label, lambda b: when(b.start, "%d/%m/%Y"))


_ENV.globals.update(hour_chart=hour_chart, day_chart=day_chart)


def page(template: str, **context: Any) -> bytes:
    """A rendered page, UTF-8, its text NFC (labels and stored values alike)."""
    html = _ENV.get_template(template).render(**context)
    return unicodedata.normalize("NFC", html).encode("utf-8")
