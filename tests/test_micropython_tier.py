"""Every core test (tests/core) and firmware test (tests/firmware) again, under the MicroPython
WebAssembly port.

One pytest item per core test function, with ids like ``test_ccm.py::test_round_trip``; all of
them run in one MicroPython process per session (tests/mpytier.py has the how). Set
``$CCCD_MPY_CORE_TESTS`` to run another directory of core tests (the runner's own tests do) and
``$CCCD_MPY_TIMEOUT`` to change the time allowed for the whole tier. Without node or the npm
package every item errors with how to install them: this tier is never skipped.
"""

from __future__ import annotations

import pytest
from mpytier import Case, Outcome, core_dir, discover, run_cases, tier_dirs

CORE = core_dir()
CASES = [case for d in tier_dirs() for case in discover(d)]


@pytest.fixture(scope="session")
def micropython_outcomes(request: pytest.FixtureRequest) -> dict[Case, Outcome]:
    """Outcomes of the session's selected cases, from one MicroPython run."""
    selected = [
        item.callspec.params["case"]
        for item in request.session.items
        if isinstance(getattr(item, "callspec", None) and item.callspec.params.get("case"), Case)
    ]
    return run_cases(selected, CORE)


if CASES:  # no core tests, no items (an empty parametrize would report a skip)

    @pytest.mark.micropython
    @pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
    def test_core_under_micropython(case: Case, micropython_outcomes: dict[Case, Outcome]) -> None:
        outcome = micropython_outcomes[case]
        if not outcome.ok:
            pytest.fail(outcome.message, pytrace=False)
