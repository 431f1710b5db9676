"""The dashboard over real HTTP: no page without a login, the login's defences (wrong password,
lockout, CSRF, session expiry, logout), stored values shown as text, and every page rendered from
an empty store and from a known one, on SQLite and PostgreSQL."""

import html
import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from collector.keystore import Keystore
from collector.registry import Registry
from collector.web import auth
from collector.web.render import ago, number, percent
from collector.web.server import FORM_COOKIE, PAGES, SESSION_COOKIE
from collector.web.settings import WebSettings

from .webdesk import (
    DAY,
    HOSTILE_DEVICE,
    HOSTILE_MODEL,
    HOSTILE_REASON,
    HOSTILE_SITE,
    HOUR,
    PASSWORD,
    USER,
    Desk,
    desk,
    fill,
    form_token,
    login,
)


@pytest.fixture
def sqlite_desk(tmp_path: object) -> Iterator[Desk]:
    with desk(f"sqlite:///{tmp_path}/collector.db") as d:
        yield d


@contextmanager
def logged_in(d: Desk) -> Iterator[httpx.Client]:
    with d.client() as client:
        assert login(client).status_code == 303
        yield client


def cookie_headers(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


# --- no page without a login ------------------------------------------------------------------


@pytest.mark.parametrize("path", [*PAGES, "/", "/no-such-page", "/static/../fleet"])
def test_no_page_without_login(sqlite_desk: Desk, path: str) -> None:
    with sqlite_desk.client() as client:
        r = client.get(path)
    assert r.status_code == 303
    target = path if path in PAGES else "/fleet"
    assert r.headers["location"] == "/login?next=" + target.replace("/", "%2F")
    assert r.content == b""


def test_a_forged_or_stale_session_cookie_is_no_session(sqlite_desk: Desk) -> None:
    with sqlite_desk.client() as client:
        client.cookies.set(SESSION_COOKIE, "forged-token")
        assert client.get("/fleet").status_code == 303
        client.cookies.set(SESSION_COOKIE, "a=b; c")  # not even a cookie value
        assert client.get("/fleet").status_code == 303


def test_the_login_page_and_the_stylesheet_are_public(sqlite_desk: Desk) -> None:
    with sqlite_desk.client() as client:
        page = client.get("/login")
        css = client.get("/static/style.css")
    assert page.status_code == 200 and "Đăng nhập" in page.text and 'lang="vi"' in page.text
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "Thiết bị" not in page.text  # no navigation before the login


# --- login --------------------------------------------------------------------------------------


def test_login_then_every_page_then_logout(sqlite_desk: Desk) -> None:
    with sqlite_desk.client() as client:
        r = login(client, nxt="/alerts")
        assert r.status_code == 303 and r.headers["location"] == "/alerts"
        session_cookie = next(c for c in cookie_headers(r) if c.startswith(SESSION_COOKIE + "="))
        assert "HttpOnly" in session_cookie and "SameSite=Strict" in session_cookie
        assert "Secure" not in session_cookie  # plain HTTP on 127.0.0.1: a Secure cookie would never return
        assert client.get("/").headers["location"] == "/fleet"
        for path in PAGES:
            page = client.get(path)
            assert page.status_code == 200, path
            assert USER in page.text and "Đăng xuất" in page.text
        token = form_token(client.get("/fleet").text)
        out = client.post("/logout", data={"csrf": token})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert any(c.startswith(SESSION_COOKIE + "=;") and "Max-Age=0" in c for c in cookie_headers(out))
        stale = client.cookies.get(SESSION_COOKIE)
    with sqlite_desk.client() as replay:  # the old session's cookie replayed: the session is gone
        replay.cookies.set(SESSION_COOKIE, stale or "")
        assert replay.get("/fleet").status_code == 303


def test_wrong_password_and_unknown_user_are_refused_alike(sqlite_desk: Desk) -> None:
    with sqlite_desk.client() as client:
        wrong = login(client, password="not the password")
        unknown = login(client, name="nobody")
        assert client.get("/fleet").status_code == 303
    for r in (wrong, unknown):
        assert r.status_code == 401
        assert "Sai tên đăng nhập hoặc mật khẩu." in r.text
        assert not any(c.startswith(SESSION_COOKIE) for c in cookie_headers(r))


def test_an_open_redirect_after_login_is_not_followed(sqlite_desk: Desk) -> None:
    with sqlite_desk.client() as client:
        r = login(client, nxt="https://evil.example/")
    assert r.status_code == 303 and r.headers["location"] == "/fleet"


def test_lockout_after_repeated_failures(sqlite_desk: Desk) -> None:
    d = sqlite_desk
    with d.client() as client:
        for _ in range(auth.MAX_FAILURES):
            assert login(client, password="guess").status_code == 401
        locked = login(client)  # the right password, too late
        assert locked.status_code == 429 and "tạm khóa" in locked.text
        assert client.get("/fleet").status_code == 303
        d.clock.now += auth.LOCKOUT + 1
        assert login(client).status_code == 303
        assert client.get("/fleet").status_code == 200


def test_a_success_forgets_the_failures(sqlite_desk: Desk) -> None:
    with sqlite_desk.client() as client:
        for _ in range(auth.MAX_FAILURES - 1):
            assert login(client, password="guess").status_code == 401
        assert login(client).status_code == 303
        for _ in range(auth.MAX_FAILURES - 1):
            assert login(client, password="guess").status_code == 401
        assert login(client).status_code == 303


def test_one_address_guessing_many_names_is_refused(tmp_path: object) -> None:
    with desk(f"sqlite:///{tmp_path}/c.db", throttle=auth.Throttle(max_address_failures=3)) as d:
        auth.Users(d.writer).add("it-02", PASSWORD, log_n=10)
        with d.client() as client:
            for name in ("it-02", "it-03", "it-04"):
                assert login(client, name=name, password="guess").status_code == 401
            assert login(client).status_code == 429  # another name, the right password: refused


# --- CSRF ---------------------------------------------------------------------------------------


def test_login_without_the_forms_token_is_refused(sqlite_desk: Desk) -> None:
    with sqlite_desk.client() as client:
        token = form_token(client.get("/login").text)
        data = {"name": USER, "password": PASSWORD}
        cases = [
            {**data},  # no token
            {**data, "csrf": "x" * 43},  # a token of another form
        ]
        for form in cases:
            r = client.post("/login", data=form)
            assert r.status_code == 403 and "Biểu mẫu" in r.text
        client.cookies.delete(FORM_COOKIE)  # a forged cross-site post has the token but no cookie
        assert client.post("/login", data={**data, "csrf": token}).status_code == 403
        assert client.get("/fleet").status_code == 303


def test_a_post_from_another_origin_is_refused(sqlite_desk: Desk) -> None:
    with sqlite_desk.client() as client:
        token = form_token(client.get("/login").text)
        r = client.post(
            "/login",
            data={"name": USER, "password": PASSWORD, "csrf": token},
            headers={"Origin": "https://evil.example"},
        )
        assert r.status_code == 403
        ok = client.post(
            "/login",
            data={"name": USER, "password": PASSWORD, "csrf": token},
            headers={"Origin": sqlite_desk.url},
        )
        assert ok.status_code == 303


def test_logout_needs_the_sessions_token(sqlite_desk: Desk) -> None:
    with logged_in(sqlite_desk) as client:
        refused = client.post("/logout", data={"csrf": "wrong"})
        assert refused.status_code == 403
        assert client.post("/logout").status_code == 403
        assert client.get("/fleet").status_code == 200  # still logged in


def test_a_form_that_is_not_a_form_is_refused(sqlite_desk: Desk) -> None:
    with sqlite_desk.client() as client:
        assert client.post("/login", json={"name": USER}).status_code == 400
        big = client.post("/login", content=b"a" * 10_000, headers={"Content-Type": _FORM})
        assert big.status_code == 413
        assert client.request("DELETE", "/login").status_code == 405
    with logged_in(sqlite_desk) as client:
        assert client.post("/fleet").status_code == 405


_FORM = "application/x-www-form-urlencoded"


# --- sessions -----------------------------------------------------------------------------------


def test_a_session_ends_when_idle(sqlite_desk: Desk) -> None:
    d = sqlite_desk
    with logged_in(d) as client:
        d.clock.now += auth.IDLE - 60
        assert client.get("/fleet").status_code == 200  # activity keeps it
        d.clock.now += auth.IDLE - 60
        assert client.get("/fleet").status_code == 200
        d.clock.now += auth.IDLE + 1
        r = client.get("/fleet")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_a_session_ends_after_its_lifetime_however_active(sqlite_desk: Desk) -> None:
    d = sqlite_desk
    with logged_in(d) as client:
        start = d.clock.now
        while d.clock.now - start < auth.LIFETIME - 20 * 60:
            d.clock.now += 20 * 60
            assert client.get("/fleet").status_code == 200
        d.clock.now = start + auth.LIFETIME + 1
        assert client.get("/fleet").status_code == 303


def test_settings_shorten_sessions_and_make_cookies_secure(tmp_path: object) -> None:
    settings = WebSettings(session_idle_minutes=1, secure_cookie=True)
    with desk(f"sqlite:///{tmp_path}/c.db", settings) as d, d.client() as client:
        # httpx, as a browser, sends a Secure cookie over HTTPS only: the cookies are sent by hand
        form = client.get("/login")
        assert all("Secure" in c for c in cookie_headers(form))
        data = {"name": USER, "password": PASSWORD, "csrf": form_token(form.text)}
        r = client.post("/login", data=data, headers={"Cookie": f"{FORM_COOKIE}={data['csrf']}"})
        assert r.status_code == 303 and all("Secure" in c for c in cookie_headers(r))
        token = re.search(SESSION_COOKIE + r"=([^;]+)", cookie_headers(r)[0]).group(1)  # type: ignore[union-attr]
        session = {"Cookie": f"{SESSION_COOKIE}={token}"}
        assert client.get("/fleet", headers=session).status_code == 200
        d.clock.now += 61
        assert client.get("/fleet", headers=session).status_code == 303


def test_a_removed_user_is_logged_out(sqlite_desk: Desk) -> None:
    with logged_in(sqlite_desk) as client:
        auth.Users(sqlite_desk.writer).remove(USER)
        assert client.get("/fleet").status_code == 303


def test_responses_forbid_scripts_framing_and_caching(sqlite_desk: Desk) -> None:
    with logged_in(sqlite_desk) as client:
        r = client.get("/fleet")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    assert "<script" not in r.text


# --- the pages ----------------------------------------------------------------------------------


@pytest.fixture
def any_desk(store_url: str) -> Iterator[Desk]:
    with desk(store_url) as d:
        yield d


def _text(page: str) -> str:
    """The page's text as a person reads it: tags removed, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_every_page_renders_from_an_empty_store(any_desk: Desk) -> None:
    with logged_in(any_desk) as client:
        pages = {path: client.get(path) for path in PAGES}
    assert all(r.status_code == 200 for r in pages.values())
    fleet = pages["/fleet"].text
    assert 'data-online="0" data-total="0"' in fleet and "Chưa có thiết bị nào" in fleet
    alerts = _text(pages["/alerts"].text)
    assert "Không có thiết bị nào mất kết nối." in alerts
    assert "Không có việc gửi thất bại." in alerts and "Không có lỗi cấu hình BHXH" in alerts
    volume = pages["/volume"].text
    assert _bars(volume) == [[0] * 24, [0] * 30] and "Cơ sở KCB 38001" in volume
    outcomes = _text(pages["/outcomes"].text)
    assert "Chưa có trả lời nào của BHXH." in outcomes and "Không có bản tin nào bị từ chối" in outcomes
    assert "tiếp đón có BHYT bằng CCCD/VNeID — 0 / 0" in outcomes  # no insured read: no share


def test_every_page_renders_a_known_store(any_desk: Desk) -> None:
    fill(any_desk.writer)
    with logged_in(any_desk) as client:
        pages = {path: client.get(path) for path in PAGES}
    assert all(r.status_code == 200 for r in pages.values())
    fleet = pages["/fleet"].text
    assert 'data-online="1" data-total="3"' in fleet
    row = re.search(r'<tr data-facility="38001" data-device="qr-0001".*?</tr>', fleet, re.S)
    assert row, fleet
    cells = _text(row.group(0))
    for shown in ("ESP32", "Chip (NFC), QR", "ACR122U", "Quầy 1 – Khoa Khám bệnh", "Trực tuyến"):
        assert shown in cells
    assert "42,9 %" in cells and "12,5 %" in cells  # uptime today and over 30 days
    assert "20/11/2026 13:59" in cells and "1.4.2" in cells  # last seen (UTC+7), firmware
    assert re.search(r"\b3 2$", cells)  # outbox depth 3, drops 2
    offline = _text(re.search(r'data-device="qr-0002".*?</tr>', fleet, re.S).group(0))  # type: ignore[union-attr]
    assert "Raspberry Pi" in offline and "Mất kết nối" in offline and "2 giờ trước" in offline
    alerts = _text(pages["/alerts"].text)
    assert "qr-0002" in alerts and HOSTILE_DEVICE in alerts  # offline 2 h > 15 min, and never seen
    assert "Chưa kết nối" in alerts
    assert HOSTILE_REASON in alerts and "Đăng ký HIS" in alerts  # the dead letter, its reason
    assert re.search(
        r"054 CCCD của cán bộ tra cứu chưa được đăng ký với cơ sở KCB 1 20/11/2026 13:00", alerts
    )
    assert 'data-code="054"' in pages["/alerts"].text
    assert 'data-code="055"' not in pages["/alerts"].text and 'data-code="000"' not in pages["/alerts"].text


def test_stored_values_are_text_never_markup(any_desk: Desk) -> None:
    fill(any_desk.writer)
    with logged_in(any_desk) as client:
        pages = {path: client.get(path).text for path in PAGES}
    for path, page in pages.items():
        for hostile in (HOSTILE_SITE, HOSTILE_DEVICE, HOSTILE_MODEL, HOSTILE_REASON):
            assert hostile not in page, path
        assert "<script" not in page and "<img" not in page and "<b>" not in page and "<i>" not in page
    shown = {path: _text(page) for path, page in pages.items()}  # yet a person reads them as they are
    assert all(h in shown["/fleet"] for h in (HOSTILE_SITE, HOSTILE_DEVICE, HOSTILE_MODEL))
    assert HOSTILE_REASON in shown["/alerts"]


def test_pages_are_nfc_and_in_vietnamese(any_desk: Desk) -> None:
    fill(any_desk.writer)
    with logged_in(any_desk) as client:
        for path, (_template, title) in PAGES.items():
            page = client.get(path).text
            assert unicodedata.is_normalized("NFC", page)
            assert f"<h1>{title}</h1>" in page
            assert "Giờ Việt Nam (UTC+7)" in page


def test_the_offline_threshold_is_a_setting(tmp_path: object) -> None:
    with desk(f"sqlite:///{tmp_path}/c.db", WebSettings(offline_alert_minutes=3 * 60)) as d:
        fill(d.writer)
        with logged_in(d) as client:
            alerts = client.get("/alerts").text
    assert "quá 180 phút" in alerts
    assert 'data-device="qr-0002"' not in alerts  # offline 2 h: under the 3 h threshold
    assert HOSTILE_DEVICE in _text(alerts)  # never seen: always listed


def test_the_dashboard_cannot_write_the_store(any_desk: Desk) -> None:
    db = any_desk.app.store.db
    with pytest.raises(db.errors), db.transaction() as tx:
        tx.execute("INSERT INTO web_users (name, password, created) VALUES ('x', 'y', 0)")
    assert [u.name for u in auth.Users(any_desk.writer).all()] == [USER]


def test_a_store_that_fails_is_a_clear_503(sqlite_desk: Desk) -> None:
    with logged_in(sqlite_desk) as client:
        with sqlite_desk.writer.transaction() as tx:
            tx.execute("DROP TABLE presence_state")
        r = client.get("/fleet")
    assert r.status_code == 503 and "Không đọc được dữ liệu" in r.text


def test_times_are_shown_in_the_facilitys_zone(sqlite_desk: Desk) -> None:
    sqlite_desk.clock.now = 1_763_596_800.0 + 59  # 2025-11-20 00:00:59 UTC, 07:00:59 UTC+7
    with logged_in(sqlite_desk) as client:
        assert "20/11/2025 07:00:59" in client.get("/fleet").text


def test_durations_read_as_a_person_says_them() -> None:
    assert [ago(s) for s in (5, 125, 2 * HOUR + 300, DAY + 3 * HOUR)] == [
        "5 giây",
        "2 phút",
        "2 giờ 5 phút",
        "1 ngày 3 giờ",
    ]
    assert number(1234567.5, 1) == "1.234.567,5" and percent(0.9876) == "98,8 %"


def _bars(page: str) -> list[list[int]]:
    """The values of each chart's bars, chart by chart."""
    return [
        [int(v) for v in re.findall(r'<rect class="bar"[^>]*data-value="(\d+)"', svg)]
        for svg in re.findall(r"<svg.*?</svg>", page, re.S)
    ]


def test_the_volume_page_counts_the_reads_per_hour_and_day(any_desk: Desk) -> None:
    fill(any_desk.writer)
    with logged_in(any_desk) as client:
        page = client.get("/volume").text
    hours, days = _bars(page)
    assert len(hours) == 24 and hours[11] == 1 and hours[12] == 2 and hours[13] == 2 and sum(hours) == 5
    assert len(days) == 30 and days[-1] == 5 and days[-6] == 1 and sum(days) == 6  # today, 5 days ago
    assert "11:00–12:00: 1 lượt đọc" in page and "15/11/2026: 1 lượt đọc" in page
    assert re.findall(r'data-total="(\d+)"', page) == ["5", "6"]
    today = re.search(r'<tr data-doc="cccd">.*?</tr>', page, re.S)
    assert today and _text(today.group(0)) == "CCCD gắn chip 2 0 2"
    assert _text(re.findall(r'<tr data-doc="cancuoc">.*?</tr>', page, re.S)[1]) == "Thẻ Căn cước 0 1 1"


def test_the_outcomes_page_tells_insured_by_cccd_from_fallback(any_desk: Desk) -> None:
    fill(any_desk.writer)
    with logged_in(any_desk) as client:
        page = client.get("/outcomes").text

    def row(attribute: str, value: str) -> str:
        found = re.search(rf'<tr {attribute}="{value}">.*?</tr>', page, re.S)
        assert found, value
        return _text(found.group(0))

    assert row("data-outcome", "insured_cccd").endswith(" 1 1")
    assert row("data-outcome", "fallback").endswith(" 1 2")  # 054 today, 010 five days ago
    assert row("data-outcome", "bhyt_card").endswith(" 1 1")
    assert row("data-outcome", "pending").endswith(" 1 1")
    assert row("data-outcome", "dead").endswith(" 0 0")
    assert row("data-outcome", "unchecked").endswith(" 1 1")
    assert row("data-code", "000") == "000 Thẻ BHYT hợp lệ 2 2"
    assert row("data-code", "010") == "010 Thẻ BHYT hết hạn 0 1"
    assert row("data-code", "054").startswith("054 CCCD của cán bộ tra cứu")
    assert row("data-reason", "tag") == "Bản tin bị sửa đổi hoặc sai khóa tag 2 2"
    assert row("data-reason", "duplicate") == "Gửi trùng (đã lưu trước đó) duplicate 0 1"
    share = re.search(r'data-period="today">.*?</div>', page, re.S)
    assert share and "50,0 %" in share.group(0) and "1 / 2 lượt có BHYT" in _text(share.group(0))


def test_a_facility_is_chosen_among_the_known_ones(sqlite_desk: Desk) -> None:
    fill(sqlite_desk.writer)
    registry = Registry(sqlite_desk.writer, Keystore(bytes(32)))
    registry.add("38002", "qr-0001", "esp32", "Quầy 1")
    with logged_in(sqlite_desk) as client:
        first = client.get("/volume").text
        other = client.get("/volume", params={"facility": "38002"}).text
        hostile = client.get("/outcomes", params={"facility": "<script>"}).text
    assert 'href="/volume?facility=38002"' in first and re.findall(r'data-total="(\d+)"', first) == ["5", "6"]
    assert re.findall(r'data-total="(\d+)"', other) == ["0", "0"]
    assert 'aria-current="page">38002<' in other
    assert 'aria-current="page">38001<' in hostile and "<script>" not in hostile
