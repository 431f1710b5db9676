"""The monthly Đề án 06 report of one facility, for the provincial health department.

``build`` gathers one calendar month (in the facility's time zone, UTC+7) from the store with
``collector.stats``; ``to_xlsx``, ``to_csv`` and ``to_markdown`` write it. What it reports:

- the indicators of the template's §II.3 (seed 000, "Khám chữa bệnh bằng thẻ CCCD gắn chip tích
  hợp BHYT"): insured visits made with a CCCD, Căn cước or VNeID instead of the BHYT card over all
  insured visits, and the QR readers meeting the Ministry of Information and Communications'
  standard; with the figures seed 001 tracks beside them (QR readers, chip readers);
- seed 003's target: 70 % of the visits made with a CCCD/VNeID have insurance information
  returned, and whether it is met;
- the readers' uptime (hours online over hours expected), in all and per device;
- the figures behind them: reads, insured visits by document, checks answered, pending or never
  answered, messages refused; reads by document and source, by BHXH code, refusals by reason and
  reads per day.

Labels are Vietnamese as in the template (UTF-8, NFC; every text the writers put out is
normalised to NFC, whatever the registry holds). The report carries no personal data: only
counts, the facility code, device ids and the sites IT gave them.

A visit here is a read at a reception counter: the collector registers each read as a visit in
the HIS. The month of a read is the month in which the collector received it.
"""

import csv
import datetime
import io
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from collector import fleet, stats
from collector.db import Database
from collector.forward import insurance
from collector.tracker import FleetTracker

if TYPE_CHECKING:
    from openpyxl.styles import Font
    from openpyxl.worksheet.worksheet import Worksheet

TARGET_RETURNED = 0.70  # seed 003: 70 % of CCCD visits with insurance information returned

TITLE = "BÁO CÁO ĐỊNH KỲ HÀNG THÁNG – Kết quả triển khai thực hiện Đề án 06/CP"
SECTION = "3. Khám chữa bệnh bằng thẻ CCCD gắn chip tích hợp BHYT"

# Indicator keys, in the report's order.
CCCD_SHARE = "cccd_share"
QR_STANDARD = "qr_standard"
QR_READERS = "qr_readers"
CHIP_READERS = "chip_readers"
RETURNED_SHARE = "returned_share"
UPTIME = "uptime"
READS = "reads"
INSURED = "insured"
INSURED_CCCD = "insured_cccd"
INSURED_BHYT = "insured_bhyt"
ANSWERED_SHARE = "answered_share"
PENDING = "pending"
DEAD = "dead"
UNCHECKED = "unchecked"
REJECTS = "rejects"

LABELS = {
    CCCD_SHARE: "Số lượng dùng thẻ CCCD/VNeID thay thế thẻ BHYT/tổng số lượng khám BHYT",
    QR_STANDARD: "Số lượng máy QR-Code theo tiêu chuẩn của Bộ Thông tin và Truyền thông",
    QR_READERS: "Tổng số máy quét mã QR trên thẻ CCCD",
    CHIP_READERS: "Số lượng thiết bị đọc thẻ chip",
    RETURNED_SHARE: "Số lượt khám bằng thẻ CCCD/VNeID có thông tin bảo hiểm trả về/tổng số lượt khám"
    " bằng thẻ CCCD/VNeID",
    UPTIME: "Thời gian hoạt động của thiết bị đọc thẻ (giờ hoạt động/giờ theo dõi)",
    READS: "Tổng số lượt đọc thẻ tại quầy tiếp đón",
    INSURED: "Tổng số lượt khám BHYT (thẻ BHYT hợp lệ)",
    INSURED_CCCD: "Trong đó: bằng thẻ CCCD/VNeID",
    INSURED_BHYT: "Trong đó: bằng thẻ BHYT",
    ANSWERED_SHARE: "Số lượt có kết quả tra cứu từ cổng BHXH/tổng số lượt đọc thẻ",
    PENDING: "Số lượt đang chờ kết quả tra cứu BHXH",
    DEAD: "Số lượt không nhận được kết quả tra cứu BHXH",
    UNCHECKED: "Số lượt không tra cứu BHXH",
    REJECTS: "Số bản tin bị máy chủ từ chối",
}

UNITS = {QR_STANDARD: "máy", QR_READERS: "máy", CHIP_READERS: "thiết bị", UPTIME: "giờ", REJECTS: "bản tin"}

NOTES = (
    "Một lượt khám là một lần đọc thẻ tại quầy tiếp đón (mỗi lần đọc được đăng ký một lượt khám trên HIS);"
    " lượt đọc thuộc tháng theo thời điểm máy chủ nhận (giờ Việt Nam, UTC+7).",
    "Khám BHYT: cổng BHXH trả về thẻ BHYT còn giá trị (mã 000–004). Thẻ CCCD/VNeID gồm thẻ CCCD gắn chip,"
    " thẻ Căn cước và ứng dụng VNeID, đọc qua mã QR hoặc chip.",
    "Có thông tin bảo hiểm trả về: cổng BHXH trả về thông tin thẻ BHYT của người bệnh (còn hay hết giá trị);"
    " mục tiêu 70% theo Kế hoạch Mô hình điểm khám chữa bệnh bằng thẻ CCCD gắn chip và VNeID.",
    "Số lượng thiết bị tính theo thiết bị đang hoạt động tại thời điểm lập báo cáo và đã lắp đặt trước khi"
    " hết tháng.",
)

DOC_LABELS = {
    "cccd": "Thẻ CCCD gắn chip",
    "cancuoc": "Thẻ Căn cước",
    "vneid": "Ứng dụng VNeID",
    "bhyt": "Thẻ BHYT",
}
SRC_LABELS = {"qr": "quét mã QR", "nfc": "đọc chip"}

CHECK_LABELS = {
    stats.CHECK_PENDING: "Đang chờ kết quả tra cứu",
    stats.CHECK_DEAD: "Không nhận được kết quả (quá hạn)",
    stats.CHECK_NONE: "Không tra cứu BHXH",
}
INCOMPLETE_LABEL = "Không đủ thông tin để tra cứu"

REJECT_LABELS = {
    "too_large": "Bản tin quá lớn",
    "malformed": "Bản tin hỏng",
    "alg": "Sai thuật toán mã hóa",
    "header": "Sai tiêu đề bản tin",
    "kid": "Sai mã thiết bị trong bản tin",
    "unknown_kid": "Thiết bị chưa đăng ký hoặc đã bị thu hồi",
    "tag": "Bản tin bị sửa đổi hoặc sai khóa",
    "envelope": "Sai phong bì mã hóa",
    "topic": "Sai chủ đề bản tin",
    "schema": "Sai cấu trúc dữ liệu",
    "cbor": "Sai cấu trúc dữ liệu (CBOR)",
    "missing": "Thiếu trường dữ liệu",
    "type": "Sai kiểu dữ liệu",
    "value": "Sai giá trị dữ liệu",
    "version": "Sai phiên bản giao thức",
    "seq_mismatch": "Sai số thứ tự bản tin",
    "duplicate": "Bản tin trùng lặp (gửi lại)",
    "unknown_device": "Thiết bị chưa đăng ký",
    "internal": "Lỗi xử lý nội bộ",
}

# Groups of the detail lines.
DOCUMENTS = "documents"
OUTCOMES = "outcomes"
REFUSED = "rejects"
DAYS = "days"
GROUP_LABELS = {
    DOCUMENTS: "Số lượt đọc theo loại giấy tờ",
    OUTCOMES: "Kết quả tra cứu thông tin BHYT",
    REFUSED: "Bản tin bị từ chối theo lý do",
    DAYS: "Số lượt đọc thẻ theo ngày",
}

MET, NOT_MET, NO_DATA = "Đạt", "Chưa đạt", "Không có số liệu"


class ReportError(ValueError):
    """The report cannot be made as asked (a month that is not one, or has not begun)."""


@dataclass(frozen=True)
class Indicator:
    """One figure: a count (``denominator`` None), or a ratio ``value``/``denominator``, with its
    target when there is one."""

    key: str
    label: str
    value: float
    denominator: float | None = None
    target: float | None = None
    unit: str = "lượt"

    @property
    def ratio(self) -> float | None:
        return self.value / self.denominator if self.denominator else None

    @property
    def met(self) -> bool | None:
        """Whether the target is met; None without a target or without figures."""
        ratio = self.ratio
        return None if self.target is None or ratio is None else ratio >= self.target

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        return NO_DATA if self.met is None else MET if self.met else NOT_MET


@dataclass(frozen=True)
class Line:
    """A detail: how many reads (messages for refusals) of one kind, in one group."""

    group: str  # DOCUMENTS / OUTCOMES / REFUSED / DAYS
    key: str  # cccd:qr / 000 / tag / 2026-11-01 ...
    label: str
    value: int


@dataclass(frozen=True)
class MonthlyReport:
    facility: str
    year: int
    month: int
    start: float  # the month: [start, end), Unix seconds
    end: float
    until: float  # figures up to here: the month's end, or when the report was made if earlier
    generated: float
    indicators: tuple[Indicator, ...]
    devices: tuple[stats.DeviceUptime, ...]
    lines: tuple[Line, ...]

    def indicator(self, key: str) -> Indicator:
        return next(i for i in self.indicators if i.key == key)

    def group(self, group: str) -> tuple[Line, ...]:
        return tuple(line for line in self.lines if line.group == group)


def parse_month(text: str) -> tuple[int, int]:
    """``YYYY-MM`` -> (year, month); ReportError for anything else."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
    if not match or not 1 <= int(match[2]) <= 12 or int(match[1]) < 2000:
        raise ReportError(f"{text!r} is not a month: write YYYY-MM, e.g. 2026-11")
    return int(match[1]), int(match[2])


def build(
    db: Database, tracker: FleetTracker, facility: str, year: int, month: int, now: float
) -> MonthlyReport:
    """The report of ``facility`` for the month, as of ``now``: a month still running is
    reported up to ``now``. ``tracker`` is read from the store (``FleetTracker(db, ...)``); its
    presence is ticked to ``now`` here (not saved), as ``cccd-edge collector fleet`` does."""
    if not 1 <= month <= 12:
        raise ReportError(f"month {month} is not from 1 to 12")
    window = fleet.month_window(year, month)
    if now <= window.start:
        raise ReportError(f"{year}-{month:02d} has not begun")
    span = fleet.Interval(window.start, min(window.end, now))
    tracker.presence.tick(now)
    reads = stats.reads_by_document(db, facility, span)
    outcomes = stats.insurance_outcomes(db, facility, span)
    refused = stats.rejects(db, facility, span)
    equipment = stats.equipment(tracker, facility, window, now)
    lines = (
        _document_lines(reads)
        + _outcome_lines(outcomes)
        + [Line(REFUSED, r.reason, REJECT_LABELS.get(r.reason, r.reason), r.messages) for r in refused]
        + [_day_line(b) for b in stats.volume(db, facility, span, stats.DAY)]
    )
    return MonthlyReport(
        facility=facility,
        year=year,
        month=month,
        start=window.start,
        end=window.end,
        until=span.end,
        generated=now,
        indicators=_indicators(reads, outcomes, refused, equipment),
        devices=equipment.devices,
        lines=tuple(lines),
    )


def _indicators(
    reads: stats.ReadsByDocument,
    outcomes: stats.InsuranceOutcomes,
    refused: Sequence[stats.RejectCount],
    equipment: stats.Equipment,
) -> tuple[Indicator, ...]:
    share, returned, answered = outcomes.cccd_share(), outcomes.returned(), outcomes.answered()
    checks = outcomes.by_check()
    online = sum(d.online for d in equipment.devices) / 3600
    expected = sum(d.expected for d in equipment.devices) / 3600
    found = (
        (CCCD_SHARE, share.numerator, share.denominator, None),
        (QR_STANDARD, equipment.qr_standard, None, None),
        (QR_READERS, equipment.qr_readers, None, None),
        (CHIP_READERS, equipment.chip_readers, None, None),
        (RETURNED_SHARE, returned.numerator, returned.denominator, TARGET_RETURNED),
        (UPTIME, online, expected, None),
        (READS, reads.total, None, None),
        (INSURED, outcomes.insured, None, None),
        (INSURED_CCCD, outcomes.insured_cccd, None, None),
        (INSURED_BHYT, outcomes.insured_bhyt, None, None),
        (ANSWERED_SHARE, answered.numerator, answered.denominator, None),
        (PENDING, checks.get(stats.CHECK_PENDING, 0), None, None),
        (DEAD, checks.get(stats.CHECK_DEAD, 0), None, None),
        (UNCHECKED, checks.get(stats.CHECK_NONE, 0), None, None),
        (REJECTS, sum(r.messages for r in refused), None, None),
    )
    return tuple(
        Indicator(key, LABELS[key], value, denominator, target, UNITS.get(key, "lượt"))
        for key, value, denominator, target in found
    )


def _document_lines(reads: stats.ReadsByDocument) -> list[Line]:
    return [
        Line(
            DOCUMENTS,
            f"{r.doc}:{r.src}",
            f"{DOC_LABELS.get(r.doc, r.doc)} – {SRC_LABELS.get(r.src, r.src)}",
            r.reads,
        )
        for r in reads.rows
    ]


def _outcome_lines(outcomes: stats.InsuranceOutcomes) -> list[Line]:
    lines = []
    for code, n in sorted(outcomes.by_code().items()):
        label = (
            f"Mã {code}: {insurance.verdict({'maKetQua': code}).text.splitlines()[0]}"
            if code
            else INCOMPLETE_LABEL
        )
        lines.append(Line(OUTCOMES, code or "incomplete", label, n))
    checks = outcomes.by_check()
    for check in (stats.CHECK_PENDING, stats.CHECK_DEAD, stats.CHECK_NONE):
        if checks.get(check):
            lines.append(Line(OUTCOMES, check, CHECK_LABELS[check], checks[check]))
    return lines


def _day_line(bucket: stats.Bucket) -> Line:
    day = fleet.local_date(bucket.start)
    return Line(DAYS, day.isoformat(), day.strftime("%d/%m/%Y"), bucket.reads)


# --- writers ----------------------------------------------------------------------------------


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _moment(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, fleet.FACILITY_TZ).strftime("%H:%M %d/%m/%Y")


def _heading(report: MonthlyReport) -> list[str]:
    """The lines above the tables: what, where, when."""
    until = "24:00 " + _date(report.end - 1) if report.until >= report.end else _moment(report.until)
    return [
        TITLE,
        f"Cơ sở khám chữa bệnh: {report.facility} – Tháng {report.month:02d}/{report.year}",
        f"Số liệu từ 00:00 {_date(report.start)} đến {until} (giờ Việt Nam, UTC+7)",
        f"Lập lúc {_moment(report.generated)}",
    ]


def _date(t: float) -> str:
    return fleet.local_date(t).strftime("%d/%m/%Y")


INDICATOR_HEADER = ("Mã", "Chỉ tiêu", "Số lượng", "Tổng số", "Tỷ lệ", "Mục tiêu", "Đánh giá", "Đơn vị")
DEVICE_HEADER = (
    "Thiết bị",
    "Vị trí",
    "Loại",
    "Máy quét QR",
    "Máy QR đạt chuẩn",
    "Đầu đọc chip",
    "Giờ hoạt động",
    "Giờ theo dõi",
    "Tỷ lệ hoạt động",
)
LINE_HEADER = ("Nhóm", "Mã", "Nội dung", "Số lượng")


def _device_counts(d: stats.DeviceUptime) -> tuple[int, int, int]:
    qr = [r for r in d.readers if r.type == fleet.READER_QR]
    return len(qr), sum(1 for r in qr if r.std), sum(1 for r in d.readers if r.type == fleet.READER_CHIP)


def to_xlsx(report: MonthlyReport) -> bytes:
    """The report as an Excel workbook: indicators, devices, details and days on four sheets;
    every figure a number (ratios formatted as percentages), every text a text (never a formula)."""
    from openpyxl import Workbook  # noqa: PLC0415 - only this writer needs it
    from openpyxl.styles import Font  # noqa: PLC0415
    from openpyxl.worksheet.worksheet import Worksheet  # noqa: PLC0415

    book = Workbook()
    sheet = book.active
    assert isinstance(sheet, Worksheet)
    sheet.title = "Chỉ tiêu"
    bold = Font(bold=True)
    for text in _heading(report):
        sheet.append([_nfc(text)])
    sheet["A1"].font = bold
    sheet.append([])
    sheet.append([SECTION])
    _header(sheet, INDICATOR_HEADER, bold)
    for i in report.indicators:
        _row(sheet, (i.key, i.label, i.value, i.denominator, i.ratio, i.target, i.verdict, i.unit))
        row = sheet.max_row
        counts = "#,##0" if isinstance(i.value, int) else "#,##0.00"  # hours have decimals
        sheet.cell(row, 3).number_format = sheet.cell(row, 4).number_format = counts
        sheet.cell(row, 5).number_format = "0.0%"
        sheet.cell(row, 6).number_format = "0%"
    sheet.append([])
    sheet.append(["Ghi chú"])
    for note in NOTES:
        _row(sheet, ("", note))
    _widths(sheet, (16, 90, 12, 12, 10, 10, 16, 10))

    devices = book.create_sheet("Thiết bị")
    _header(devices, DEVICE_HEADER, bold)
    for d in report.devices:
        _row(
            devices,
            (d.device, d.site, d.kind, *_device_counts(d), d.online / 3600, d.expected / 3600, d.uptime),
        )
        row = devices.max_row
        devices.cell(row, 7).number_format = devices.cell(row, 8).number_format = "0.00"
        devices.cell(row, 9).number_format = "0.0%"
    _widths(devices, (16, 40, 8, 12, 16, 12, 14, 14, 14))

    details = book.create_sheet("Chi tiết")
    _header(details, LINE_HEADER, bold)
    for line in report.lines:
        if line.group != DAYS:
            _row(details, (GROUP_LABELS[line.group], line.key, line.label, line.value))
    _widths(details, (34, 16, 44, 10))

    days = book.create_sheet("Theo ngày")
    _header(days, ("Ngày", "Số lượt đọc thẻ"), bold)
    for line in report.group(DAYS):
        _row(days, (datetime.date.fromisoformat(line.key), line.value))
        days.cell(days.max_row, 1).number_format = "DD/MM/YYYY"
    _widths(days, (14, 16))

    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _header(sheet: "Worksheet", names: Sequence[str], font: "Font") -> None:
    _row(sheet, names)
    for cell in sheet[sheet.max_row]:
        cell.font = font


def _row(sheet: "Worksheet", values: Iterable[object]) -> None:
    """Append a row; texts stay texts (openpyxl takes a text starting with '=' for a formula)."""
    sheet.append([(_nfc(v) or None) if isinstance(v, str) else v for v in values])
    for cell in sheet[sheet.max_row]:
        if isinstance(cell.value, str):
            cell.data_type = "s"


def _widths(sheet: "Worksheet", widths: Sequence[int]) -> None:
    for i, width in enumerate(widths):
        sheet.column_dimensions[chr(ord("A") + i)].width = width


CSV_HEADER = ("Phần", "Mã", "Nội dung", "Số lượng", "Tổng số", "Tỷ lệ (%)", "Mục tiêu (%)", "Đánh giá")


def to_csv(report: MonthlyReport) -> bytes:
    """The report as one CSV table (comma-separated, dot decimals): the heading lines, then a row
    per indicator, device and detail. Ratios are percentages with two decimals, hours two
    decimals. Encoded UTF-8 *with a byte order mark*: Excel opens a CSV without one in the
    Windows code page (1258 for Vietnamese) and shows every Vietnamese letter as mojibake; the
    BOM makes it read UTF-8. A text that a spreadsheet would run as a formula (= + - @) is
    prefixed with an apostrophe."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for text in _heading(report):
        writer.writerow([_csv_text(text)])
    writer.writerow(CSV_HEADER)
    for i in report.indicators:
        writer.writerow(
            [
                "Chỉ tiêu",
                i.key,
                _csv_text(i.label),
                _number(i.value),
                "" if i.denominator is None else _number(i.denominator),
                _percent(i.ratio),
                _percent(i.target),
                i.verdict,
            ]
        )
    for d in report.devices:
        writer.writerow(
            [
                "Thiết bị",
                d.device,
                _csv_text(d.site),
                _number(d.online / 3600),
                _number(d.expected / 3600),
                _percent(d.uptime),
                "",
                "",
            ]
        )
    for line in report.lines:
        writer.writerow(
            [GROUP_LABELS[line.group], line.key, _csv_text(line.label), line.value, "", "", "", ""]
        )
    return _nfc(out.getvalue()).encode("utf-8-sig")


def _csv_text(text: str) -> str:
    text = _nfc(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.2f}"


def _percent(ratio: float | None) -> str:
    return "" if ratio is None else f"{100 * ratio:.2f}"


def to_markdown(report: MonthlyReport) -> str:
    """The report as Markdown tables, numbers written the Vietnamese way (1.234; 85,6%)."""
    title, *rest = _heading(report)
    out = [f"# {_md(title)}", "", *[_md(line) + "  " for line in rest], "", f"## {SECTION}", ""]
    out += _md_table(
        ("Chỉ tiêu", "Số lượng", "Tổng số", "Tỷ lệ", "Mục tiêu", "Đánh giá"),
        [
            (
                i.label,
                f"{_vn(i.value)} {i.unit}",
                "" if i.denominator is None else _vn(i.denominator),
                _vn_percent(i.ratio),
                _vn_percent(i.target),
                i.verdict,
            )
            for i in report.indicators
        ],
        right=(1, 2, 3, 4),
    )
    out += ["", "## Thiết bị đọc thẻ", ""]
    if report.devices:
        out += _md_table(
            DEVICE_HEADER,
            [
                (
                    d.device,
                    d.site,
                    d.kind,
                    *(_vn(n) for n in _device_counts(d)),
                    _vn(d.online / 3600),
                    _vn(d.expected / 3600),
                    _vn_percent(d.uptime),
                )
                for d in report.devices
            ],
            right=(3, 4, 5, 6, 7, 8),
        )
    else:
        out.append("Không có thiết bị trong tháng.")
    for group in (DOCUMENTS, OUTCOMES, REFUSED, DAYS):
        lines = report.group(group)
        out += ["", f"## {GROUP_LABELS[group]}", ""]
        if lines:
            out += _md_table(("Nội dung", "Số lượng"), [(x.label, _vn(x.value)) for x in lines], right=(1,))
        else:
            out.append("Không có.")
    out += ["", "## Ghi chú", "", *[f"- {_md(note)}" for note in NOTES], ""]
    return _nfc("\n".join(out))


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]], right: Sequence[int]) -> list[str]:
    rule = ["---:" if i in right else "---" for i in range(len(header))]
    return [
        "| " + " | ".join(_md(h) for h in header) + " |",
        "| " + " | ".join(rule) + " |",
        *["| " + " | ".join(_md(c) for c in row) + " |" for row in rows],
    ]


def _md(text: str) -> str:
    """A text safe in a Markdown table cell: one line, no cell separator, no HTML."""
    text = " ".join(_nfc(text).split())
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _vn(value: float) -> str:
    """1234 -> '1.234'; 12.5 -> '12,50'."""
    if isinstance(value, int):
        return f"{value:,}".replace(",", ".")
    return f"{value:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".")


def _vn_percent(ratio: float | None) -> str:
    return "" if ratio is None else f"{100 * ratio:.1f}%".replace(".", ",")
