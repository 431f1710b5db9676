"""The insurance check's verdict: a BHXH ``maKetQua`` turned into what the counter shows.

Every code the gateway documents maps to a ``Verdict``: the Result status for the node
(``ok``/``warn``/``reject``/``pending``/``error``), two Vietnamese lines of at most 16 characters
for its display, the card's validity when known, and what the collector must do next:

- 000, 001, 002: insured visit (001/002: Defence / Public Security cards, check the papers);
- 003, 004: a new card was issued: insured visit with the new card's dates, flagged (``warn``);
- 010, 110, 120–124, 050–070: no valid insurance information (expired, withdrawn, reduced, none,
  mismatched): ``reject`` with the reason and the fallback of the Thanh Hóa plan (seed 003): the
  patient shows the BHYT card and a photo ID, and is told where to correct their data;
- 130: a child without a card: ``warn``, the papers (birth certificate) are asked for;
- 054, 055: the facility's officer identity is wrong: ``error`` at the counter and an alert for IT;
- 100, 101, 500 and no answer at all: ``pending``, to be retried; the final answer follows;
- 205: the request was malformed (a bug of ours): ``error`` and an alert;
- 401: the token is bad: refresh it and ask again (``pending`` if that fails too).
"""

import datetime
import re
from dataclasses import dataclass
from typing import Any

from cccd.schema import fits_display

OK = "ok"
WARN = "warn"
REJECT = "reject"
PENDING = "pending"
ERROR = "error"

# What the collector does after the verdict.
DONE = "done"  # the answer is final
RETRY = "retry"  # ask again later; the counter shows pending
REFRESH = "refresh"  # get a new token, then ask again
ALERT = "alert"  # final for the counter, and IT must fix the configuration


@dataclass(frozen=True)
class Verdict:
    status: str
    code: str
    text: str  # two lines of at most 16 characters, Vietnamese
    next: str = DONE
    valid_to: str | None = None  # ISO date, when the gateway gave one
    new_card: str | None = None  # 003/004: the new card's number

    def __post_init__(self) -> None:
        if not fits_display(self.text):
            raise ValueError(f"display text of code {self.code} does not fit two lines of 16")


FALLBACK = "Xuất trình thẻ\nBHYT + giấy tờ"  # seed 003: the BHYT card and a photo ID
PENDING_TEXT = "Đang kiểm tra\nBHYT, xin chờ..."

# code -> (status, text, next); texts with {to} get the card's end date (dd/mm/yyyy).
_TABLE: dict[str, tuple[str, str, str]] = {
    "000": (OK, "Thẻ BHYT hợp lệ\nĐến {to}", DONE),
    "001": (OK, "BHYT hợp lệ (QĐ)\nKiểm tra giấy tờ", DONE),
    "002": (OK, "BHYT hợp lệ (CA)\nKiểm tra giấy tờ", DONE),
    "003": (WARN, "Đã cấp thẻ mới\nĐến {to}", DONE),
    "004": (WARN, "Đã cấp thẻ mới\nĐến {to}", DONE),
    "010": (REJECT, "Thẻ BHYT hết hạn\n" + FALLBACK.split("\n")[1], DONE),
    "050": (REJECT, "Không có TT BHYT\n" + FALLBACK.split("\n")[1], DONE),
    "051": (REJECT, "Sai mã thẻ BHYT\n" + FALLBACK.split("\n")[1], DONE),
    "052": (REJECT, "Sai mã tỉnh thẻ\n" + FALLBACK.split("\n")[1], DONE),
    "053": (REJECT, "Sai mã quyền lợi\n" + FALLBACK.split("\n")[1], DONE),
    "054": (ERROR, "Lỗi cấu hình\nBáo phòng CNTT", ALERT),
    "055": (ERROR, "Lỗi cấu hình\nBáo phòng CNTT", ALERT),
    "060": (REJECT, "Sai họ tên\n" + FALLBACK.split("\n")[1], DONE),
    "061": (REJECT, "Sai họ tên\n" + FALLBACK.split("\n")[1], DONE),
    "070": (REJECT, "Sai ngày sinh\n" + FALLBACK.split("\n")[1], DONE),
    "100": (PENDING, PENDING_TEXT, RETRY),
    "101": (PENDING, PENDING_TEXT, RETRY),
    "110": (REJECT, "Thẻ đã thu hồi\n" + FALLBACK.split("\n")[1], DONE),
    "120": (REJECT, "Thẻ bị giảm\n" + FALLBACK.split("\n")[1], DONE),
    "130": (WARN, "Trẻ em chưa thẻ\nXuất trình giấy", DONE),
    "205": (ERROR, "Lỗi hệ thống\nBáo phòng CNTT", ALERT),
    "401": (PENDING, PENDING_TEXT, REFRESH),
    "500": (PENDING, PENDING_TEXT, RETRY),
}
for _code in ("121", "122", "123", "124"):
    _TABLE[_code] = _TABLE["120"]

CODES = tuple(sorted(_TABLE))
NO_ANSWER = Verdict(PENDING, "", PENDING_TEXT, RETRY)  # timeout, connection refused, outage


def verdict(answer: dict[str, Any]) -> Verdict:
    """The verdict of one KQNhanLichSuKCB2024 answer (the gateway's JSON object)."""
    code = str(answer.get("maKetQua", "")).strip()
    row = _TABLE.get(code)
    if row is None:  # a code the gateway did not document: ask again, and it shows in the metrics
        return Verdict(PENDING, code[:3] if code.isdigit() else "", PENDING_TEXT, RETRY)
    status, text, nxt = row
    if code in ("003", "004"):
        to, new_card = answer.get("gtTheDenMoi"), answer.get("maTheMoi")
    else:
        to, new_card = answer.get("gtTheDen"), None
    valid_to = _iso(to) if status in (OK, WARN) else None
    if "{to}" in text:
        text = text.replace("{to}", str(to).strip()) if valid_to else text.split("\n")[0] + "\nCòn giá trị"
    return Verdict(status, code, text, nxt, valid_to, new_card or None)


def coverage_of(answer: dict[str, Any], v: Verdict) -> dict[str, str] | None:
    """The card the HIS registers the visit under (``his.Coverage``'s fields): the card the gateway
    confirmed, or for 003/004 the new card; None when the check found no valid card."""
    if v.status not in (OK, WARN):
        return None
    new = v.code in ("003", "004") and bool(v.new_card)
    suffix = "Moi" if new else ""
    card = answer.get("maTheMoi" if new else "maThe")
    if not isinstance(card, str) or not card.strip():
        return None
    found = {
        "card": card.strip().upper(),
        "code": v.code,
        "valid_from": _iso(answer.get("gtTheTu" + suffix)),
        "valid_to": _iso(answer.get("gtTheDen" + suffix)),
        "kcbbd": answer.get("maDKBD" + suffix),
    }
    return {k: v.strip() for k, v in found.items() if isinstance(v, str) and v.strip()}


_DMY = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")  # ASCII digits only


def _iso(text: object) -> str | None:
    """dd/MM/yyyy (or d/M/yyyy) -> YYYY-MM-DD; None for anything else. (Not strptime: it was 4 % of
    the forwarders' CPU at 400 reads/s.)"""
    found = _DMY.fullmatch(text.strip()) if isinstance(text, str) else None
    if found is None:
        return None
    day, month, year = (int(g) for g in found.groups())
    try:
        return datetime.date(year, month, day).isoformat()
    except ValueError:  # 31/02, 00/13, year 0
        return None
