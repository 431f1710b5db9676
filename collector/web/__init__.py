"""The operators' dashboard: server-rendered pages over the collector's store, for hospital IT.

Run by ``cccd-edge web run --config collector.toml``: a process of its own beside the collector,
with a read-only connection to the store (``PRAGMA query_only`` on SQLite, read-only transactions
on PostgreSQL), so it can never disturb ingest nor change what the collector keeps. Users are
added with ``cccd-edge web user add`` (stored in the store's ``web_users`` table, scrypt-hashed).

Pages (labels in Vietnamese, times UTC+7): the fleet (``/fleet``), read volume (``/volume``),
outcomes of the insurance check (``/outcomes``), alerts (``/alerts``). No personal data is shown.

Modules: ``auth`` (passwords, users, sessions, login throttle), ``server`` (the WSGI application
and the threaded server), ``pages`` (what each page reads), ``render`` (templates, Vietnamese
formats), ``settings`` (the ``[web]`` section of collector.toml).
"""

from collector.web.auth import UserError, Users
from collector.web.server import Dashboard, WebServer, open_dashboard
from collector.web.settings import WebSettings

__all__ = ["Dashboard", "UserError", "Users", "WebServer", "WebSettings", "open_dashboard"]
