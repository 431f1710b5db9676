"""The dashboard's HTTP side: a WSGI application and the threaded server that runs it.

The server is the standard library's ``wsgiref`` with a thread per request (``ThreadingMixIn``):
a few IT staff read a few pages a minute, which needs no framework and no server package on the
facility server, and the whole of the HTTP surface is in this file to review. Requests are
bounded: 30 s of socket silence, 8 KiB of form body. Serve it on 127.0.0.1 (the default) or behind
the facility's TLS reverse proxy, and set ``[web] secure_cookie = true`` there.

Every page but ``/login`` and the stylesheet needs a session; anything else without one is sent to
``/login``. Logging in, and out, is a POST with a CSRF token: the login form's token is the
double-submit kind (a random ``cccd_form`` cookie that the form must repeat), the logged-in pages'
token belongs to the session. A POST whose ``Origin`` is another site is refused as well. Cookies are
HttpOnly and SameSite=Strict; responses carry a Content-Security-Policy with no script at all.
"""

import hmac
import http.cookies
import logging
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

from collector import config as collector_config
from collector.db import Database, open_db
from collector.keystore import Keystore, load_kek
from collector.registry import Registry
from collector.web import auth, pages, render
from collector.web import settings as web_settings
from collector.web.settings import WebSettings

log = logging.getLogger("cccd.web")

SESSION_COOKIE = "cccd_session"
FORM_COOKIE = "cccd_form"  # the login form's CSRF token (double submit)
MAX_FORM = 8192  # bytes of a POST body
REFRESH = 60  # seconds between a page's reloads (a meta refresh: no script)

SECURITY_HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
]

PAGES = {  # path -> (template, title); the navigation's order
    "/fleet": ("fleet.html", "Thiết bị"),
    "/volume": ("volume.html", "Lưu lượng quét"),
    "/outcomes": ("outcomes.html", "Kết quả kiểm tra"),
    "/alerts": ("alerts.html", "Cảnh báo"),
}
HOME = "/fleet"

_STATUS = {
    200: "200 OK",
    204: "204 No Content",
    303: "303 See Other",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    403: "403 Forbidden",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    413: "413 Content Too Large",
    429: "429 Too Many Requests",
    503: "503 Service Unavailable",
}


class BadRequestError(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


@dataclass
class Request:
    environ: WSGIEnvironment

    @property
    def method(self) -> str:
        return str(self.environ.get("REQUEST_METHOD", "GET")).upper()

    @property
    def path(self) -> str:
        return str(self.environ.get("PATH_INFO", "/")) or "/"

    @property
    def address(self) -> str:
        return str(self.environ.get("REMOTE_ADDR", ""))

    def query(self, name: str) -> str:
        values = urllib.parse.parse_qs(str(self.environ.get("QUERY_STRING", ""))).get(name, [""])
        return values[0]

    def cookie(self, name: str) -> str:
        jar = http.cookies.SimpleCookie()
        try:
            jar.load(str(self.environ.get("HTTP_COOKIE", "")))
        except http.cookies.CookieError:
            return ""
        morsel = jar.get(name)
        return "" if morsel is None else morsel.value

    def form(self) -> dict[str, str]:
        """The urlencoded body of a POST (first value of each field); no body is an empty form."""
        try:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise BadRequestError(400, "Content-Length is not a number") from None
        if length <= 0:
            return {}
        kind = str(self.environ.get("CONTENT_TYPE", "")).split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise BadRequestError(400, "a form is application/x-www-form-urlencoded")
        if length > MAX_FORM:
            raise BadRequestError(413, "the form is too large")
        body = self.environ["wsgi.input"].read(length)
        try:
            fields = urllib.parse.parse_qs(body.decode("utf-8"), max_num_fields=10)
        except (UnicodeError, ValueError):
            raise BadRequestError(400, "the form is not UTF-8 urlencoded") from None
        return {name: values[0] for name, values in fields.items()}

    def same_origin(self) -> bool:
        """False when the browser says the request comes from another site (``Origin``). Browsers
        send ``null`` under our ``Referrer-Policy: no-referrer``: that proves nothing either way,
        and the CSRF token decides."""
        origin = self.environ.get("HTTP_ORIGIN")
        if origin is None or origin == "null":
            return True
        host = str(self.environ.get("HTTP_HOST", ""))
        return urllib.parse.urlsplit(str(origin)).netloc == host


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def redirect(cls, location: str) -> "Response":
        return cls(303, headers=[("Location", location)])


class Dashboard:
    """The WSGI application: routes, sessions, CSRF, and the pages (rules: module docstring)."""

    def __init__(
        self,
        store: pages.Store,
        users: auth.Users,
        settings: WebSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        throttle: auth.Throttle | None = None,
    ) -> None:
        self.store = store
        self.users = users
        self.settings = settings or WebSettings()
        self.clock = clock
        self.sessions = auth.Sessions(
            idle=self.settings.session_idle_minutes * 60.0, lifetime=self.settings.session_hours * 3600.0
        )
        self.throttle = throttle or auth.Throttle()
        self.css = resources.files("collector.web").joinpath("static", "style.css").read_bytes()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.handle(request)
        except BadRequestError as exc:
            response = self._problem(exc.status, str(exc))
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            response = self._problem(503, "the store could not be read")
        finally:
            self.store.done()
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            *SECURITY_HEADERS,
            *response.headers,
        ]
        if not any(name == "Cache-Control" for name, _ in headers):
            headers.append(("Cache-Control", "no-store"))
        start_response(_STATUS[response.status], headers)
        return [response.body] if request.method != "HEAD" else []

    # --- routing --------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path, method = request.path, request.method
        if path == "/static/style.css":
            return Response(body=self.css, content_type="text/css; charset=utf-8")
        if path == "/favicon.ico":  # none; not a page, so not a redirect to a new login form
            return Response(204, headers=[("Cache-Control", "max-age=86400")])
        if path == "/login":
            if method == "POST":
                return self._login(request)
            return self._login_form(request) if method in ("GET", "HEAD") else self._not_allowed()
        now = self.clock()
        token = request.cookie(SESSION_COOKIE)
        session = self.sessions.get(token, now) if token else None
        if session is not None and not self.users.exists(session.user):
            self.sessions.end(token)  # the user was removed: the session goes with it
            session = None
        if session is None:
            return self._to_login(request)
        if path == "/logout":
            return self._logout(request, token, session) if method == "POST" else self._not_allowed()
        if method not in ("GET", "HEAD"):
            return self._not_allowed()
        if path == "/":
            return Response.redirect(HOME)
        if path in PAGES:
            return self._page(path, request, session, now)
        return self._problem(404, "no such page", session)

    def _to_login(self, request: Request) -> Response:
        target = request.path if request.path in PAGES else HOME
        return Response.redirect("/login?" + urllib.parse.urlencode({"next": target}))

    def _not_allowed(self) -> Response:
        return self._problem(405, "method not allowed")

    # --- login and logout -----------------------------------------------------------------

    def _login_form(
        self, request: Request, status: int = 200, message: str = "", name: str = "", nxt: str = ""
    ) -> Response:
        form_token = request.cookie(FORM_COOKIE)
        if len(form_token) < 32:
            form_token = secrets.token_urlsafe(32)
        nxt = nxt or request.query("next")
        body = render.page(
            "login.html",
            title="Đăng nhập",
            user=None,
            csrf=form_token,
            next=nxt if nxt in PAGES else HOME,
            name=name,
            message=message,
            now=self.clock(),
        )
        cookie = self._cookie(FORM_COOKIE, form_token, path="/login")
        return Response(status, body, headers=[("Set-Cookie", cookie)])

    def _login(self, request: Request) -> Response:
        form = request.form()
        expected = request.cookie(FORM_COOKIE)
        if (
            not request.same_origin()
            or len(expected) < 32
            or not hmac.compare_digest(form.get("csrf", "").encode(), expected.encode())
        ):
            return self._login_form(
                request, 403, "Biểu mẫu đã hết hạn hoặc không hợp lệ. Vui lòng đăng nhập lại."
            )
        name, password, nxt = form.get("name", "").strip(), form.get("password", ""), form.get("next", "")
        now = self.clock()
        if self.throttle.refused(name, request.address, now):
            log.warning("login of %r from %s refused: too many failures", name[:64], request.address)
            message = "Đăng nhập sai quá nhiều lần: tài khoản tạm khóa 15 phút. Vui lòng thử lại sau."
            return self._login_form(request, 429, message, name, nxt)
        if not self.users.check(name, password):
            self.throttle.failed(name, request.address, now)
            log.info("failed login of %r from %s", name[:64], request.address)
            return self._login_form(request, 401, "Sai tên đăng nhập hoặc mật khẩu.", name, nxt)
        self.throttle.succeeded(name)
        token, _session = self.sessions.start(name, now)
        log.info("%s logged in from %s", name, request.address)
        response = Response.redirect(nxt if nxt in PAGES else HOME)
        response.headers += [
            ("Set-Cookie", self._cookie(SESSION_COOKIE, token)),
            ("Set-Cookie", self._cookie(FORM_COOKIE, "", path="/login", expire=True)),
        ]
        return response

    def _logout(self, request: Request, token: str, session: auth.Session) -> Response:
        form = request.form()
        if not request.same_origin() or not hmac.compare_digest(
            form.get("csrf", "").encode(), session.csrf.encode()
        ):
            return self._problem(403, "the form's token is wrong: reload the page", session)
        self.sessions.end(token)
        log.info("%s logged out", session.user)
        response = Response.redirect("/login")
        response.headers.append(("Set-Cookie", self._cookie(SESSION_COOKIE, "", expire=True)))
        return response

    def _cookie(self, name: str, value: str, path: str = "/", expire: bool = False) -> str:
        parts = [f"{name}={value}", f"Path={path}", "HttpOnly", "SameSite=Strict"]
        if expire:
            parts.append("Max-Age=0")
        if self.settings.secure_cookie:
            parts.append("Secure")
        return "; ".join(parts)

    # --- pages ----------------------------------------------------------------------------

    def _page(self, path: str, request: Request, session: auth.Session, now: float) -> Response:
        template, title = PAGES[path]
        data: dict[str, Any]
        if path == "/fleet":
            data = {"fleet": pages.fleet_page(self.store, now)}
        elif path == "/alerts":
            threshold = self.settings.offline_alert_minutes * 60.0
            data = {"alerts": pages.alerts_page(self.store, threshold, now)}
        else:
            facilities = self.store.facilities()
            chosen = request.query("facility")
            facility = chosen if chosen in facilities else (facilities[0] if facilities else "")
            if path == "/volume":
                data = {"volume": pages.volume_page(self.store, facility, now)}
            else:
                data = {"outcomes": pages.outcomes_page(self.store, facility, now)}
        return Response(body=self._render(template, title, session, now, path, **data))

    def _render(
        self, template: str, title: str, session: auth.Session | None, now: float, path: str = "", **data: Any
    ) -> bytes:
        return render.page(
            template,
            title=title,
            user=session.user if session else None,
            csrf=session.csrf if session else "",
            pages=PAGES,
            current=path,
            refresh=REFRESH,
            now=now,
            **data,
        )

    def _problem(self, status: int, why: str, session: auth.Session | None = None) -> Response:
        messages = {
            400: "Yêu cầu không hợp lệ.",
            403: "Yêu cầu bị từ chối: biểu mẫu không hợp lệ. Vui lòng tải lại trang.",
            404: "Không có trang này.",
            405: "Phương thức không được hỗ trợ.",
            413: "Dữ liệu gửi lên quá lớn.",
            503: "Không đọc được dữ liệu của bộ thu thập. Vui lòng thử lại sau.",
        }
        body = self._render(
            "problem.html", "Lỗi", session, self.clock(), message=messages.get(status, why), status=status
        )
        return Response(status, body)


# --- the server -----------------------------------------------------------------------------


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(WSGIRequestHandler):
    timeout = 30  # seconds of silence before a connection is dropped (a slow client holds a thread)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class WebServer:
    """The dashboard on ``host:port`` in a thread of its own (port 0: a free one)."""

    def __init__(self, app: Dashboard, host: str = "127.0.0.1", port: int = 8080) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "WebServer":
        server = make_server(self.host, self.port, self.app, server_class=_Server, handler_class=_Handler)
        assert isinstance(server, _Server)
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="cccd-web", daemon=True
        )
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def open_dashboard(config_path: str) -> tuple[Dashboard, Database]:
    """The dashboard of the collector whose settings file is ``config_path``, and its store's
    connection (read-only; close it after the server stops).

    The registry's constructor wants the keystore (the KEK), as ``cccd-edge collector fleet``
    does; the dashboard reads only the devices' names, kinds and sites, never a secret."""
    cfg = collector_config.load(config_path)
    settings = web_settings.load(config_path)
    keystore = Keystore(load_kek(cfg.store.kek_file))
    db = open_db(cfg.store.url, create=False)  # a dashboard of no store is a mistake to report
    try:
        pages.read_only(db)
        store = pages.Store(db, Registry(db, keystore), cfg.heartbeat_interval, cfg.facilities)
        return Dashboard(store, auth.Users(db), settings), db
    except BaseException:
        db.close()
        raise
