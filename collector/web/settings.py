"""The dashboard's settings: the optional ``[web]`` section of the collector's settings file.

    [web]
    offline_alert_minutes = 15      # a device offline (or never seen) this long is an alert
    session_idle_minutes = 30       # a session ends after this long without a request
    session_hours = 12              # and this long after login, whatever the activity
    secure_cookie = false           # true when users reach the dashboard over HTTPS (a proxy)

The collector itself ignores the section; the dashboard reads the rest of the file
(``collector.config``) for the store and the heartbeat interval.
"""

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from collector.config import ConfigError


@dataclass(frozen=True)
class WebSettings:
    offline_alert_minutes: float = 15.0
    session_idle_minutes: float = 30.0
    session_hours: float = 12.0
    secure_cookie: bool = False


def load(path: str | Path) -> WebSettings:
    """The ``[web]`` section of the settings file (defaults without one)."""
    try:
        data = tomllib.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return from_dict(data.get("web", {}))


def from_dict(section: dict[str, Any]) -> WebSettings:
    known = {f.name for f in fields(WebSettings)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(f"unknown or misspelt setting in [web]: {', '.join(unknown)}")
    settings = WebSettings(**section)
    numbers = (settings.offline_alert_minutes, settings.session_idle_minutes, settings.session_hours)
    if not all(isinstance(n, int | float) and not isinstance(n, bool) and n > 0 for n in numbers):
        raise ConfigError("[web] offline_alert_minutes, session_idle_minutes and session_hours are positive")
    if not isinstance(settings.secure_cookie, bool):
        raise ConfigError("[web] secure_cookie is true or false")
    return settings
