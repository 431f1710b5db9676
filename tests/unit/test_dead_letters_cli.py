"""IT's view of the dead letters and their replay, through the command line (real processes)."""

import json
import subprocess
import sys
from pathlib import Path

from collector import config
from collector.db import open_db
from collector.forward import jobs

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args], capture_output=True, text=True, cwd=ROOT, check=False
    )


def _home_with_dead_letters(tmp_path: Path) -> str:
    home = tmp_path / "home"
    assert cli("provision", "init", "--home", str(home), "--facility", "38001").returncode == 0
    toml = str(home / "collector.toml")
    db = open_db(config.load(toml).store.url)
    try:
        with db.transaction() as tx:
            for seq, kind in ((1, jobs.INSURANCE), (2, jobs.HIS), (3, jobs.HIS)):
                jobs.enqueue(tx, "38001", "qr-0001", seq, kind, 1000.0)
        for job in jobs.due(db, jobs.INSURANCE, 2000.0) + jobs.due(db, jobs.HIS, 2000.0):
            jobs.dead(
                db, job, f"the HIS refused the registration: Patient.gender {job.seq}\nsecond line", 1100.0
            )
    finally:
        db.close()
    return toml


def test_dead_letters_are_listed_and_replayed_by_choice(tmp_path: Path) -> None:
    toml = _home_with_dead_letters(tmp_path)
    listed = cli("collector", "dead-letters", "--config", toml, "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(d["seq"], d["kind"]) for d in json.loads(listed.stdout)] == [
        (1, "insurance"),
        (2, "his"),
        (3, "his"),
    ]
    table = cli("collector", "dead-letters", "--config", toml, "--kind", "his")
    assert table.returncode == 0 and "Patient.gender 2 second line" in table.stdout
    assert "2 dead letters" in table.stdout and "collector replay" in table.stdout

    refused = cli("collector", "replay", "--config", toml)  # nothing chosen: not everything by accident
    assert refused.returncode == 64 and "--all" in refused.stderr
    replayed = cli("collector", "replay", "--config", toml, "--kind", "his", "--seq", "3")
    assert replayed.returncode == 0 and replayed.stdout.startswith("1 dead letters queued again")
    left = json.loads(cli("collector", "dead-letters", "--config", toml, "--json").stdout)
    assert [d["seq"] for d in left] == [1, 2]
    assert cli("collector", "replay", "--config", toml, "--all").stdout.startswith("2 ")
    assert cli("collector", "dead-letters", "--config", toml).stdout == "no dead letters\n"


def test_a_missing_settings_file_is_one_clear_line(tmp_path: Path) -> None:
    out = cli("collector", "dead-letters", "--config", str(tmp_path / "nope.toml"))
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1
    assert "cannot list the dead letters" in out.stderr and "Traceback" not in out.stderr
