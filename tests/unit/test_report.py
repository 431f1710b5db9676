"""The monthly Đề án 06 report (collector/report.py, ``cccd-edge report monthly``) against the
ground truth of a month of synthetic traffic sent through the real ingest and insurance check
(tests/unit/reception.py): the xlsx opened with openpyxl and every figure in it recounted from
what the simulator sent; the csv and Markdown read back; no personal data anywhere; the month's
edges in UTC+7; empty months; the command line's errors."""

import csv
import datetime
import io
import subprocess
import sys
import time
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from collector import config, fleet, report
from collector.db import open_db
from collector.keystore import Keystore, load_kek
from collector.metrics import Metrics
from collector.registry import Registry
from collector.tracker import FleetTracker
from sim import citizens
from sim.bhxh import BhxhGateway

from .desk import OFFICER
from .reception import DEAD, DONE, FAC, NONE, PENDING, SITES, Month, Reception, a_month, month_in_store

YEAR, MONTH = 2026, 10
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def october(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Reception, Month]]:
    """October 2026 at the counters, in each kind of store; the tests only read it."""
    yield from month_in_store(request, tmp_path_factory, YEAR, MONTH)


def made(r: Reception, year: int, month: int, now: float) -> report.MonthlyReport:
    """The report as the command makes it: a fleet read from the store."""
    return report.build(r.db, FleetTracker(r.db, r.registry, Metrics(), 3600.0), FAC, year, month, now)


# --- the ground truth -------------------------------------------------------------------------


def expected_indicators(r: Reception, m: Month) -> dict[str, tuple[float, float | None, float | None]]:
    """key -> (value, denominator, target), recounted from what the simulator sent."""
    reads = r.reads_in(m.window)
    cccd = [t for t in reads if t.doc != "bhyt"]
    insured = [t for t in reads if t.insured]
    checks = Counter(t.check for t in reads)
    return {
        "cccd_share": (sum(1 for t in insured if t.doc != "bhyt"), len(insured), None),
        "qr_standard": (sum(d.qr_std for d in m.devices), None, None),
        "qr_readers": (sum(d.qr for d in m.devices), None, None),
        "chip_readers": (sum(d.nfc for d in m.devices), None, None),
        "returned_share": (sum(t.returned for t in cccd), len(cccd), 0.70),
        "uptime": (sum(d.online for d in m.devices) / 3600, sum(d.expected for d in m.devices) / 3600, None),
        "reads": (len(reads), None, None),
        "insured": (len(insured), None, None),
        "insured_cccd": (sum(1 for t in insured if t.doc != "bhyt"), None, None),
        "insured_bhyt": (sum(1 for t in insured if t.doc == "bhyt"), None, None),
        "answered_share": (sum(1 for t in reads if t.check == DONE and t.state), len(reads), None),
        "pending": (checks[PENDING], None, None),
        "dead": (checks[DEAD], None, None),
        "unchecked": (checks[NONE], None, None),
        "rejects": (sum(r.rejects_in(m.window).values()), None, None),
    }


def expected_lines(r: Reception, m: Month) -> dict[str, dict[str, int]]:
    """group -> key -> count."""
    reads = r.reads_in(m.window)
    outcomes = Counter(t.code or "incomplete" for t in reads if t.check == DONE)
    outcomes.update(t.check for t in reads if t.check != DONE)
    first = fleet.local_date(m.window.start)
    days = Counter(fleet.local_date(t.received).isoformat() for t in reads)
    n_days = round((m.window.end - m.window.start) / 86400)
    return {
        "documents": dict(Counter(f"{t.doc}:{t.src}" for t in reads)),
        "outcomes": dict(outcomes),
        "rejects": r.rejects_in(m.window),
        "days": {(first + datetime.timedelta(days=i)).isoformat(): 0 for i in range(n_days)} | dict(days),
    }


def personal_values(people: Sequence[citizens.Citizen], m: Month) -> set[str]:
    """Every personal value of the citizens: none may appear in a report. (A birth date inside the
    month is left out: the report lists the month's days.)"""
    found: set[str] = set()
    for c in people:
        found |= {c.cccd, c.name, c.address, c.name.upper()}
        found |= {card.number for card in (c.card, c.old_card) if card is not None}
        if c.cmnd:
            found.add(c.cmnd)
        if c.bhxh:
            found.add(c.bhxh)
        if fleet.local_date(m.window.start) > c.dob or c.dob >= fleet.local_date(m.window.end):
            found |= {c.dob.strftime("%d/%m/%Y"), c.dob.isoformat(), c.dob.strftime("%d%m%Y")}
    return found


# --- reading the outputs back -----------------------------------------------------------------


def xlsx_tables(data: bytes) -> dict[str, list[tuple[Any, ...]]]:
    """Sheet -> the rows below its header row, with the cells (value, number format, data type)."""
    book = openpyxl.load_workbook(io.BytesIO(data))
    out: dict[str, list[tuple[Any, ...]]] = {}
    for sheet in book.worksheets:
        rows = list(sheet.iter_rows())
        start = next(i for i, row in enumerate(rows) if row[0].value in ("Mã", "Thiết bị", "Nhóm", "Ngày"))
        body = []
        for row in rows[start + 1 :]:
            if row[0].value is None:
                break
            body.append(tuple((c.value, c.number_format, c.data_type) for c in row))
        out[sheet.title] = body
    return out


def check_xlsx(data: bytes, r: Reception, m: Month) -> None:
    """Every figure of the workbook against the ground truth."""
    tables = xlsx_tables(data)
    want = expected_indicators(r, m)
    got = {row[0][0]: row for row in tables["Chỉ tiêu"]}
    assert list(got) == list(want)  # every indicator, in the report's order
    for key, (value, denominator, target) in want.items():
        _key, label, v, d, ratio, t, verdict, unit = got[key]
        assert label[0] == report.LABELS[key] and label[2] == "s"
        assert isinstance(v[0], int | float) and v[0] == pytest.approx(value)
        assert v[1] == ("#,##0.00" if key == "uptime" else "#,##0") and d[1] == v[1]
        assert d[0] == (None if denominator is None else pytest.approx(denominator))
        if denominator is None:
            assert ratio[0] is None
        elif denominator == 0:
            assert ratio[0] is None and verdict[0] == ("Không có số liệu" if target else None)
        else:
            assert isinstance(ratio[0], float) and ratio[0] == pytest.approx(value / denominator)
            assert ratio[1] == "0.0%"  # a number shown as a percentage, not a text
        assert t[0] == target and (target is None or t[1] == "0%")
        if target is not None and denominator:
            assert verdict[0] == ("Đạt" if value / denominator >= target else "Chưa đạt")
        assert unit[0] in ("lượt", "máy", "thiết bị", "giờ", "bản tin")

    devices = {row[0][0]: [c[0] for c in row] for row in tables["Thiết bị"]}
    assert list(devices) == [d.device for d in m.devices]
    for d in m.devices:
        _device, site, _kind, qr, qr_std, nfc, online, expected, uptime = devices[d.device]
        assert site == d.site and (qr, qr_std, nfc) == (d.qr, d.qr_std, d.nfc)
        assert online == pytest.approx(d.online / 3600) and expected == pytest.approx(d.expected / 3600)
        assert uptime == pytest.approx(d.online / d.expected)
    assert all(row[8][1] == "0.0%" for row in tables["Thiết bị"])
    formula = next(row for row in tables["Thiết bị"] if row[0][0] == "qr-0004")
    assert formula[1] == (SITES["qr-0004"], "General", "s")  # a site that looks like a formula stays text

    lines = expected_lines(r, m)
    group_of = {label: key for key, label in report.GROUP_LABELS.items()}
    details: dict[str, dict[str, int]] = {}
    for row in tables["Chi tiết"]:
        details.setdefault(group_of[row[0][0]], {})[row[1][0]] = row[3][0]
    assert details == {k: v for k, v in lines.items() if k != "days" and v}
    days = {row[0][0].date().isoformat(): row[1][0] for row in tables["Theo ngày"]}
    assert days == lines["days"]


# --- the report -------------------------------------------------------------------------------


def test_every_figure_of_the_xlsx_is_the_ground_truth(october: tuple[Reception, Month]) -> None:
    r, m = october
    rep = made(r, YEAR, MONTH, m.now)
    check_xlsx(report.to_xlsx(rep), r, m)
    assert rep.indicator("returned_share").met is True and rep.until == m.window.end
    share = rep.indicator("cccd_share")
    assert 0 < (share.ratio or 0) < 1 and share.target is None and share.met is None


def test_csv_reads_back_with_every_figure(october: tuple[Reception, Month]) -> None:
    r, m = october
    data = report.to_csv(made(r, YEAR, MONTH, m.now))
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads UTF-8
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    header = rows.index(list(report.CSV_HEADER))
    assert rows[0] == [report.TITLE] and f"Tháng {MONTH}/{YEAR}" in rows[1][0]
    body = rows[header + 1 :]
    want = expected_indicators(r, m)
    got = {row[1]: row for row in body if row[0] == "Chỉ tiêu"}
    assert list(got) == list(want)
    for key, (value, denominator, target) in want.items():
        _part, _key, label, v, d, ratio, t, _verdict = got[key]
        assert label == report.LABELS[key] and float(v) == pytest.approx(value, abs=0.005)
        assert d == "" if denominator is None else float(d) == pytest.approx(denominator, abs=0.005)
        if denominator:
            assert float(ratio) == pytest.approx(100 * value / denominator, abs=0.005)
        else:
            assert ratio == ""
        assert t == ("" if target is None else "70.00")
    devices = {row[1]: row for row in body if row[0] == "Thiết bị"}
    assert list(devices) == [d.device for d in m.devices]
    for d in m.devices:
        _p, _dev, site, online, expected, uptime, _t, _v = devices[d.device]
        assert site == ("'" + d.site if d.site.startswith("=") else d.site)  # no formula for Excel
        assert float(online) == pytest.approx(d.online / 3600, abs=0.005)
        assert float(expected) == pytest.approx(d.expected / 3600, abs=0.005)
        assert float(uptime) == pytest.approx(100 * d.online / d.expected, abs=0.005)
    group_of = {label: key for key, label in report.GROUP_LABELS.items()}
    details: dict[str, dict[str, int]] = {}
    for row in body:
        if row[0] in group_of:
            details.setdefault(group_of[row[0]], {})[row[1]] = int(row[3])
    assert details == {k: v for k, v in expected_lines(r, m).items() if v}


def _vn_number(text: str) -> float:
    """'1.234' -> 1234; '12,50' -> 12.5; '85,6%' -> 85.6."""
    return float(text.rstrip("%").replace(".", "").replace(",", "."))


def _md_rows(md: str, heading: str) -> list[list[str]]:
    lines = md.split("\n")
    start = lines.index(heading) + 4  # heading, blank, header, rule
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [c.strip().replace("\\|", "|") for c in line.strip("|").split(" | ")]
        rows.append(cells)
    return rows


def test_markdown_reads_back_with_every_figure(october: tuple[Reception, Month]) -> None:
    r, m = october
    md = report.to_markdown(made(r, YEAR, MONTH, m.now))
    assert md.startswith(f"# {report.TITLE}\n") and unicodedata.is_normalized("NFC", md)
    assert "00:00 01/10/2026 đến 24:00 31/10/2026" in md  # the month in the facility's time
    want = expected_indicators(r, m)
    rows = _md_rows(md, f"## {report.SECTION}")
    assert [row[0] for row in rows] == [report.LABELS[k] for k in want]
    for (value, denominator, target), row in zip(want.values(), rows, strict=True):
        _label, v, d, ratio, t, verdict = row
        assert _vn_number(v.split(" ")[0]) == pytest.approx(value, abs=0.005)
        assert d == "" if denominator is None else _vn_number(d) == pytest.approx(denominator, abs=0.005)
        if denominator:
            assert _vn_number(ratio) == pytest.approx(100 * value / denominator, abs=0.05)
        assert t == ("" if target is None else "70,0%")
        assert verdict == ("" if target is None else "Đạt")
    devices = _md_rows(md, "## Thiết bị đọc thẻ")
    assert [(row[0], row[1]) for row in devices] == [(d.device, d.site) for d in m.devices]
    for d, row in zip(m.devices, devices, strict=True):
        assert [_vn_number(x) for x in row[3:6]] == [d.qr, d.qr_std, d.nfc]
        assert _vn_number(row[6]) == pytest.approx(d.online / 3600, abs=0.005)
        assert _vn_number(row[8]) == pytest.approx(100 * d.online / d.expected, abs=0.05)
    lines = expected_lines(r, m)
    labels = {x.label: x.key for x in made(r, YEAR, MONTH, m.now).lines}
    for group in ("documents", "outcomes", "rejects", "days"):
        got = {
            labels[row[0]]: int(_vn_number(row[1]))
            for row in _md_rows(md, f"## {report.GROUP_LABELS[group]}")
        }
        assert got == lines[group]


def test_the_report_carries_no_personal_data(october: tuple[Reception, Month]) -> None:
    r, m = october
    rep = made(r, YEAR, MONTH, m.now)
    with zipfile.ZipFile(io.BytesIO(report.to_xlsx(rep))) as z:  # every part: sheets, strings, properties
        xlsx = "\n".join(z.read(name).decode("utf-8") for name in z.namelist() if not name.endswith(".png"))
    texts = {"xlsx": xlsx, "csv": report.to_csv(rep).decode("utf-8-sig"), "md": report.to_markdown(rep)}
    secret = personal_values(m.people, m)
    assert len(secret) > 500
    for kind, text in texts.items():
        leaked = sorted(s for s in secret if s in text)
        assert leaked == [], kind


def test_every_text_is_nfc_even_a_site_typed_decomposed(october: tuple[Reception, Month]) -> None:
    r, m = october
    rep = made(r, YEAR, MONTH, m.now)
    assert not unicodedata.is_normalized("NFC", SITES["qr-0003"])  # the registry holds it NFD
    nfc_site = unicodedata.normalize("NFC", SITES["qr-0003"])
    for label in [*report.LABELS.values(), *report.NOTES, report.TITLE, report.SECTION]:
        assert unicodedata.is_normalized("NFC", label)
    book = openpyxl.load_workbook(io.BytesIO(report.to_xlsx(rep)))
    texts = [
        c.value for s in book.worksheets for row in s.iter_rows() for c in row if isinstance(c.value, str)
    ]
    assert texts and all(unicodedata.is_normalized("NFC", t) for t in texts) and nfc_site in texts
    csv_text = report.to_csv(rep).decode("utf-8-sig")
    assert unicodedata.is_normalized("NFC", csv_text) and nfc_site in csv_text
    assert nfc_site in report.to_markdown(rep)


def test_a_month_still_running_is_reported_up_to_now(october: tuple[Reception, Month]) -> None:
    r, m = october
    now = m.window.end + 12 * 3600  # noon on 1 November
    rep = made(r, 2026, 11, now)
    assert rep.until == now and rep.indicator("reads").value == 1  # the read at 00:00 on 1 November
    assert [line.key for line in rep.group("days")] == ["2026-11-01"]
    assert "đến 12:00 01/11/2026" in report.to_markdown(rep)
    assert "qr-0009" not in {d.device for d in rep.devices}  # provisioned on 2 November: not yet
    with pytest.raises(report.ReportError, match="has not begun"):
        made(r, 2026, 12, now)


def test_an_empty_month_and_a_month_without_devices(october: tuple[Reception, Month]) -> None:
    r, m = october
    rep = made(r, 2026, 8, m.now)  # before any device was provisioned, no traffic
    assert rep.devices == () and all(i.value == 0 for i in rep.indicators)
    assert all(i.ratio is None for i in rep.indicators)
    assert rep.indicator("returned_share").verdict == "Không có số liệu"
    tables = xlsx_tables(report.to_xlsx(rep))
    assert tables["Thiết bị"] == [] and len(tables["Theo ngày"]) == 31
    assert {row[0][0]: row[4][0] for row in tables["Chỉ tiêu"]} == dict.fromkeys(report.LABELS)
    md = report.to_markdown(rep)
    assert "Không có thiết bị trong tháng." in md and "70,0%" in md
    assert report.to_csv(rep).decode("utf-8-sig").count("\r\n") > 40


def test_an_empty_store(tmp_path: Path) -> None:
    db = open_db(f"sqlite:///{tmp_path / 'empty.db'}")
    tracker = FleetTracker(db, Registry(db, Keystore(bytes(32))), Metrics(), 60.0)
    rep = report.build(db, tracker, FAC, 2026, 2, fleet.month_window(2026, 3).start)
    assert len(rep.group("days")) == 28 and rep.indicator("uptime").ratio is None
    openpyxl.load_workbook(io.BytesIO(report.to_xlsx(rep)))
    db.close()


@pytest.mark.parametrize(
    "text", ["2026-13", "2026-00", "26-11", "2026/11", "2026-1", "november", "1999-12", ""]
)
def test_a_month_that_is_not_one(text: str) -> None:
    with pytest.raises(report.ReportError, match="YYYY-MM"):
        report.parse_month(text)


def test_months_parse() -> None:
    assert report.parse_month("2026-11") == (2026, 11) and report.parse_month(" 2027-01 ") == (2027, 1)


# --- the command line -------------------------------------------------------------------------


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args], capture_output=True, cwd=cwd, timeout=120, check=False
    )


def _last_month() -> tuple[int, int]:
    first = fleet.local_date(time.time()).replace(day=1)
    before = first - datetime.timedelta(days=1)
    return before.year, before.month


def test_the_command_writes_the_report_of_last_month(tmp_path: Path) -> None:
    year, month = _last_month()
    home = tmp_path / "home"
    init = cli("provision", "init", "--home", str(home), "--facility", FAC)
    assert init.returncode == 0, init.stderr
    toml = str(home / "collector.toml")
    cfg = config.load(toml)
    people = citizens.population(150, seed=5, today=datetime.date(year, month, 15))
    gateway = BhxhGateway(people, username="bv", password="pw", officers=[(OFFICER.name, OFFICER.cccd)])
    gateway.start()
    r = Reception(cfg.store.url, kek=load_kek(cfg.store.kek_file))
    try:
        m = a_month(r, gateway, people, year, month)
    finally:
        gateway.stop()
    label = f"{year}-{month:02d}"
    try:
        out = tmp_path / "out" / "bao-cao.xlsx"
        out.parent.mkdir()
        done = cli(
            "report", "monthly", "--config", toml, "--facility", FAC, "--month", label, "--output", str(out)
        )
        assert done.returncode == 0, done.stderr
        assert str(out) in done.stdout.decode()
        check_xlsx(out.read_bytes(), r, m)

        default = cli(
            "report", "monthly", "--config", toml, "--facility", FAC, "--month", label, cwd=tmp_path
        )
        assert default.returncode == 0, default.stderr
        assert (tmp_path / f"bao-cao-de-an-06-{FAC}-{label}.xlsx").is_file()

        as_csv = cli(
            "report", "monthly", "--config", toml, "--facility", FAC, "--month", label, "--format", "csv"
        )
        assert as_csv.returncode == 0 and as_csv.stdout.startswith(b"\xef\xbb\xbf")
        rows = list(csv.reader(io.StringIO(as_csv.stdout.decode("utf-8-sig"))))
        reads = next(row for row in rows if row[1:2] == ["reads"])
        assert int(reads[3]) == len(r.reads_in(m.window))

        as_md = cli(
            "report", "monthly", "--config", toml, "--facility", FAC, "--month", label, "--format", "md"
        )
        assert as_md.returncode == 0 and as_md.stdout.decode().startswith(f"# {report.TITLE}")
        md_file = tmp_path / "r.md"
        cli(
            "report",
            "monthly",
            "--config",
            toml,
            "--facility",
            FAC,
            "--month",
            label,
            "--format",
            "md",
            "--output",
            str(md_file),
        )
        assert md_file.read_text("utf-8") == as_md.stdout.decode()

        fleet_json = cli(
            "collector", "fleet", "--config", toml, "--json"
        )  # the fleet command shares the tracker
        assert fleet_json.returncode == 0 and b"qr-0001" in fleet_json.stdout
    finally:
        r.close()


def test_the_command_says_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert cli("provision", "init", "--home", str(home), "--facility", FAC).returncode == 0
    toml = str(home / "collector.toml")
    base = ("report", "monthly", "--config", toml)
    cases = [
        ((*base, "--facility", FAC, "--month", "2026-13"), 64, "not a month"),
        ((*base, "--facility", "3800", "--month", "2026-11"), 64, "5-digit"),
        ((*base, "--facility", FAC, "--month", "2026-11", "--format", "pdf"), 64, "invalid choice"),
        ((*base, "--facility", "38009", "--month", "2026-10"), 2, "does not serve facility 38009"),
        ((*base, "--facility", FAC, "--month", "2999-01"), 2, "2999-01 has not begun"),
        (
            (*base, "--facility", FAC, "--month", "2026-10", "--output", str(tmp_path / "no" / "r.xlsx")),
            1,
            "cannot write",
        ),
    ]
    for args, code, says in cases:
        out = cli(*args)
        err = out.stderr.decode()
        assert out.returncode == code, (args, err)
        assert says in err and "Traceback" not in err, (args, err)
        if code != 64:
            assert len(err.strip().splitlines()) == 1, err

    missing = home / "missing.toml"  # beside the home's files, the store elsewhere
    store = tmp_path / "gone" / "collector.db"
    missing.write_text(
        Path(toml).read_text("utf-8").replace(config.load(toml).store.url, f"sqlite:///{store}"), "utf-8"
    )
    out = cli("report", "monthly", "--config", str(missing), "--facility", FAC, "--month", "2026-10")
    err = out.stderr.decode()
    assert out.returncode == 1 and "does not exist" in err and len(err.strip().splitlines()) == 1, err
    assert not store.exists()  # a report never makes an empty store
