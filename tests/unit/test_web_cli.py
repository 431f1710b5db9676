"""`cccd-edge web`: users added, listed and removed from the command line (the password never on
it), and `web run` serving the dashboard in a process of its own until SIGTERM."""

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from .webdesk import form_token

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "mật khẩu của phòng CNTT"


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )


def _home(tmp_path: Path) -> str:
    home = tmp_path / "home"
    assert cli("provision", "init", "--home", str(home), "--facility", "38001").returncode == 0
    return str(home / "collector.toml")


def test_users_are_added_listed_and_removed(tmp_path: Path) -> None:
    toml = _home(tmp_path)
    assert cli("web", "user", "list", "--config", toml).stdout == "no users\n"
    added = cli("web", "user", "add", "--config", toml, "--name", "it-01", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert PASSWORD not in added.stdout + added.stderr
    again = cli("web", "user", "add", "--config", toml, "--name", "it-01", stdin=PASSWORD + "\n")
    assert again.returncode == 2 and "exists already" in again.stderr
    short = cli("web", "user", "add", "--config", toml, "--name", "it-02", stdin="short\n")
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    on_the_line = cli("web", "user", "add", "--config", toml, "--name", "it-03", "--password", PASSWORD)
    assert on_the_line.returncode == 64  # there is no such option
    listed = json.loads(cli("web", "user", "list", "--config", toml, "--json").stdout)
    assert [u["name"] for u in listed] == ["it-01"] and set(listed[0]) == {"name", "created"}
    assert re.match(
        r"it-01 +added \d{4}-\d\d-\d\d \d\d:\d\d \(UTC\+7\)\n",
        cli("web", "user", "list", "--config", toml).stdout,
    )
    assert cli("web", "user", "remove", "--config", toml, "--name", "it-01").returncode == 0
    gone = cli("web", "user", "remove", "--config", toml, "--name", "it-01")
    assert gone.returncode == 2 and "no user it-01" in gone.stderr


def test_web_run_serves_until_sigterm(tmp_path: Path) -> None:
    toml = _home(tmp_path)
    cli("web", "user", "add", "--config", toml, "--name", "it-01", stdin=PASSWORD + "\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "web", "run", "--config", toml, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        found = re.match(r"dashboard at (http://127\.0\.0\.1:\d+)/", first)
        assert found, first + (proc.stderr.read() if proc.stderr else "")
        with httpx.Client(base_url=found.group(1), timeout=10) as client:
            assert client.get("/fleet").status_code == 303
            form = client.get("/login")
            data = {"name": "it-01", "password": PASSWORD, "csrf": form_token(form.text)}
            assert client.post("/login", data=data).status_code == 303
            fleet = client.get("/fleet")
            assert fleet.status_code == 200 and 'data-online="0" data-total="0"' in fleet.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_web_run_says_why_it_cannot_start(tmp_path: Path) -> None:
    toml = _home(tmp_path)
    (tmp_path / "home" / "kek").unlink()
    no_kek = cli("web", "run", "--config", toml, "--port", "0")
    assert no_kek.returncode == 1 and no_kek.stderr.startswith("cccd-edge: cannot start the dashboard")
    assert "key-encryption key" in no_kek.stderr
    missing = cli("web", "run", "--config", str(tmp_path / "nothing.toml"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr
    (tmp_path / "home" / "kek").write_text("00" * 32 + "\n", "ascii")
    (tmp_path / "home" / "collector.db").unlink()
    no_store = cli("web", "run", "--config", toml, "--port", "0")
    assert no_store.returncode == 1 and "does not exist" in no_store.stderr
    assert not (tmp_path / "home" / "collector.db").exists()  # not made, empty, by the dashboard
    Path(toml).write_text(Path(toml).read_text("utf-8") + "\n[web]\nofline_alert_minutes = 5\n", "utf-8")
    typo = cli("web", "run", "--config", toml)
    assert typo.returncode == 1 and "ofline_alert_minutes" in typo.stderr
