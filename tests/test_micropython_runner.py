"""The MicroPython tier's machinery: tools/micropython.py, and that a failure under MicroPython
fails the pytest run (with the MicroPython traceback in the report).

The tier runs here over temporary core-test directories ($CCCD_MPY_CORE_TESTS) in a pytest
subprocess (pytester), so that its failures are this test's data, not this run's failures.
"""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from mpytier import CORE_DIR_ENV, TIMEOUT_ENV, Case, discover

from tools import micropython

TIER = Path(__file__).with_name("test_micropython_tier.py")

pytestmark = pytest.mark.micropython


def _core(root: Path, files: dict[str, str]) -> Path:
    core = root / "core"
    for name, text in files.items():
        path = core / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    core.mkdir(exist_ok=True)
    return core


def _run_tier(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], *args: str
) -> pytest.RunResult:
    monkeypatch.setenv(CORE_DIR_ENV, str(_core(pytester.path, files)))
    return pytester.runpytest_subprocess(str(TIER), "-p", "no:cacheprovider", "--junitxml=report.xml", *args)


def _failures(pytester: pytest.Pytester) -> dict[str, str | None]:
    """Each test case of the inner run's JUnit report → its failure text (None when it passed)."""
    root = ET.parse(pytester.path / "report.xml").getroot()
    out: dict[str, str | None] = {}
    for case in root.iter("testcase"):
        name = case.attrib["name"].removeprefix("test_core_under_micropython[").removesuffix("]")
        failure = case.find("failure")
        assert case.find("skipped") is None, name
        out[name] = None if failure is None else (failure.text or "")
    return out


PASS_AND_FAIL = """
    import sys

    def test_runs_under_micropython():
        assert sys.implementation.name == "micropython"

    def test_fails():
        value = 41
        assert value == 42, "expected the answer under " + sys.implementation.name
"""


def test_a_failing_assertion_under_micropython_fails_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run_tier(pytester, monkeypatch, {"test_demo.py": PASS_AND_FAIL})
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    failures = _failures(pytester)
    assert failures["test_demo.py::test_runs_under_micropython"] is None
    message = failures["test_demo.py::test_fails"]
    assert message is not None
    core = pytester.path / "core"
    assert "test_demo.py::test_fails failed under MicroPython: AssertionError" in message
    assert f'File "{core}/test_demo.py", line 8, in test_fails' in message
    assert "AssertionError: expected the answer under micropython" in message


def test_import_errors_other_exceptions_and_unrunnable_tests_fail(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {
        "test_broken.py": """
            import no_such_module

            def test_one():
                pass

            def test_two():
                pass
        """,
        "test_zoo.py": """
            import sys

            def test_value_error():
                print("about to fail")
                raise ValueError("bad value: giá trị")

            def test_exit():
                sys.exit(3)

            def test_with_fixture(tmp_path):
                pass

            async def test_async():
                pass

            class TestGrouped:
                def test_in_class(self):
                    pass

            def test_gone():
                pass

            def test_ok():
                print("partial line", end="")

            del test_gone
        """,
        "sub/test_nested.py": """
            def test_nested():
                pass
        """,
        "helper.py": "def test_not_collected(): pass\n",
    }
    result = _run_tier(pytester, monkeypatch, files)
    result.assert_outcomes(passed=1, failed=9)
    f = _failures(pytester)
    assert set(f) == {
        "test_broken.py::test_one",
        "test_broken.py::test_two",
        "sub/test_nested.py",
        "test_zoo.py::test_value_error",
        "test_zoo.py::test_exit",
        "test_zoo.py::test_with_fixture",
        "test_zoo.py::test_async",
        "test_zoo.py::TestGrouped",
        "test_zoo.py::test_gone",
        "test_zoo.py::test_ok",
    }
    for name in ("test_broken.py::test_one", "test_broken.py::test_two"):
        assert "test_broken.py failed to import under MicroPython: ImportError" in str(f[name])
        assert "no_such_module" in str(f[name])
    assert "ValueError: bad value: giá trị" in str(f["test_zoo.py::test_value_error"])
    assert "about to fail" in str(f["test_zoo.py::test_value_error"])
    assert "SystemExit: 3" in str(f["test_zoo.py::test_exit"])
    assert "takes arguments" in str(f["test_zoo.py::test_with_fixture"])
    assert "is async" in str(f["test_zoo.py::test_async"])
    assert "is a test class" in str(f["test_zoo.py::TestGrouped"])
    assert "has no test function test_gone at run time" in str(f["test_zoo.py::test_gone"])
    assert "must sit directly in" in str(f["sub/test_nested.py"])
    assert f["test_zoo.py::test_ok"] is None


def test_a_test_the_harness_never_reports_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, "3")
    files = {
        "test_a.py": "def test_before():\n    pass\n",
        "test_b.py": """
            def test_hangs():
                print("spinning")
                while True:
                    pass

            def test_after():
                pass
        """,
        "test_c.py": "def test_later_module():\n    pass\n",
    }
    result = _run_tier(pytester, monkeypatch, files)
    result.assert_outcomes(passed=1, failed=3)
    f = _failures(pytester)
    assert f["test_a.py::test_before"] is None
    hangs = str(f["test_b.py::test_hangs"])
    assert "no result from MicroPython while running this test" in hangs
    assert "timed out after 3 s" in hangs
    assert "spinning" in hangs
    for name in ("test_b.py::test_after", "test_c.py::test_later_module"):
        assert "MicroPython never reported this test" in str(f[name])


def test_no_core_tests_no_items(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run_tier(pytester, monkeypatch, {"mpcheck.py": "def raises(): pass\n"})
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.assert_outcomes()


def test_discovery_follows_pytest_naming(tmp_path: Path) -> None:
    core = _core(
        tmp_path,
        {
            "test_x.py": "def test_b(): pass\ndef test_a(): pass\ndef helper(): pass\ntest_c = 1\n",
            "y_test.py": "def testcamel(): pass\n",
            "conftest.py": "def test_not_here(): pass\n",
            "broken_test.py": "def test_(:\n",
        },
    )
    cases = discover(core)
    assert [c.id for c in cases if c.problem is None] == [
        "test_x.py::test_b",
        "test_x.py::test_a",
        "y_test.py::testcamel",
    ]
    assert [c.id for c in cases if c.problem is not None] == ["broken_test.py"]
    assert Case("test_x", "test_b").id == "test_x.py::test_b"


# tools/micropython.run, directly.


def test_run_returns_output_and_timings() -> None:
    result = micropython.run('print("xin chào")\nprint("a\\u2028b")\nprint("no newline", end="")')
    assert result.ok
    assert result.stdout == "xin chào\na\u2028b\nno newline"
    assert result.stderr == ""
    assert result.error is None
    assert 0 < result.load_seconds < result.wall_seconds
    assert result.check() is result


def test_run_reports_an_uncaught_exception_after_the_output() -> None:
    result = micropython.run('print("before")\nraise ValueError("boom")')
    assert not result.ok
    assert result.stdout == "before\n"
    assert result.error_type == "ValueError"
    assert result.error is not None
    assert "Traceback (most recent call last)" in result.error
    assert "ValueError: boom" in result.error
    assert not result.crashed
    with pytest.raises(micropython.MicroPythonProgramError, match="ValueError: boom"):
        result.check()


def test_run_mounts_python_files_and_named_files_and_extends_sys_path(tmp_path: Path) -> None:
    pkg = tmp_path / "src" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("NAME = 'pkg'\n")
    (pkg / "data.txt").write_text("not copied\n")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "junk.py").write_text("")
    single = tmp_path / "single.py"
    single.write_text("VALUE = 7\n")
    data = tmp_path / "vectors.json"
    data.write_text('{"k": "giá trị"}', encoding="utf-8")
    code = (
        "import json, os, sys, pkg, single\n"
        "print(sorted(os.listdir('/m/pkg')), pkg.NAME, single.VALUE, sys.path[1:3])\n"
        "print(json.load(open('/data/vectors.json'))['k'])"
    )
    mounts = [(tmp_path / "src", "/m"), (single, "/one"), (data, "/data")]
    result = micropython.run(code, mounts=mounts, sys_path=["/m", "/one"]).check()
    assert result.stdout == "['__init__.py'] pkg 7 ['/m', '/one']\ngiá trị\n"


def test_collect_files_refuses_bad_mounts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="absolute"):
        micropython.collect_files([(tmp_path, "relative")])
    with pytest.raises(FileNotFoundError):
        micropython.collect_files([(tmp_path / "missing", "/x")])
    (tmp_path / "a.py").write_text("")
    with pytest.raises(ValueError, match="two mounts"):
        micropython.collect_files([(tmp_path, "/x"), (tmp_path / "a.py", "/x")])


def test_run_times_out_with_the_output_so_far() -> None:
    with pytest.raises(micropython.MicroPythonTimeoutError, match="timed out after 2 s") as info:
        micropython.run('print("started")\nwhile True:\n    pass', timeout=2)
    assert info.value.stdout == "started\n"


def test_missing_npm_package_or_node_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(micropython.MicroPythonUnavailable, match=r"make test.*npm ci"):
        micropython.run("pass", node_modules=tmp_path / "node_modules")
    with pytest.raises(micropython.MicroPythonUnavailable, match=r"node is not installed.*make test"):
        micropython.run("pass", node=str(tmp_path / "no-node"))
    with pytest.raises(micropython.MicroPythonUnavailable, match="no cccd-edge repository"):
        micropython.find_repo_root(tmp_path)


def test_a_broken_port_is_a_driver_error(tmp_path: Path) -> None:
    entry = tmp_path / "node_modules" / micropython.PACKAGE / "micropython.mjs"
    entry.parent.mkdir(parents=True)
    entry.write_text('throw new Error("broken port");\n')
    with pytest.raises(micropython.MicroPythonDriverError, match="broken port"):
        micropython.run("pass", node_modules=tmp_path / "node_modules")


def test_repo_root_and_node_modules_are_found() -> None:
    root = micropython.find_repo_root()
    assert (root / "pyproject.toml").is_file()
    assert micropython.find_repo_root(root / "tests" / "core") == root
    assert micropython.find_node_modules(root) == root / "node_modules"
