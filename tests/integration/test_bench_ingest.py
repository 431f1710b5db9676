"""`cccd-edge bench ingest` with tiny numbers: the whole chain runs and the report holds together.

Not a timing test: the figures depend on the machine; only the structure and the counts are checked.
"""

import json
from pathlib import Path

import pytest

from tools import benchingest, cli

pytestmark = pytest.mark.integration


def test_bench_ingest_commits_every_published_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ingest.json"
    assert cli.main(["bench", "ingest", "--publishers", "2", "--reads", "200", "--json", str(out)]) == 0
    text = capsys.readouterr()
    assert "ratio collector / bare" in text.out
    assert "collector: publishing" in text.err  # progress goes to stderr

    report = json.loads(out.read_text("utf-8"))
    assert report["publishers"] == 2 and report["reads"] == 200
    bare, collector = report["bare"], report["collector"]
    assert bare["received"] == bare["published"] == 200
    assert collector["committed"] == collector["published"] == 200
    assert collector["quarantined"] == 0
    for figures in (bare, collector):
        assert figures["per_s"] > 0 and figures["seconds"] > 0
    assert report["ratio"] == pytest.approx(collector["per_s"] / bare["per_s"], abs=0.001)
    assert report["goal_met"] == (report["ratio"] >= benchingest.GOAL_RATIO)
    assert collector["cpu_s"] is not None and collector["cpu_s"] >= 0
    assert collector["peak_rss_mib"] is not None and collector["peak_rss_mib"] > 0
    assert 200 < report["envelope_bytes"] < 400 and report["payload_bytes"] < report["envelope_bytes"]


def test_bench_ingest_refuses_fewer_reads_than_publishers(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "ingest", "--publishers", "3", "--reads", "2"]) == cli.EXIT_USAGE
    assert "need --publishers" in capsys.readouterr().err
