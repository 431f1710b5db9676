"""Bounded fuzzing of every parser that takes outside bytes (tools/fuzz.py): the kept corpus
replayed, random and mutated inputs with hypothesis, and a short coverage-guided atheris run per
target. The long run is `cccd-edge bench fuzz`."""

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools import fuzz

SEEDS = {t: [p.read_bytes() for p in fuzz.corpus(t)] for t in fuzz.TARGETS}


@pytest.mark.parametrize("target", sorted(fuzz.TARGETS))
def test_the_kept_corpus_passes(target: str) -> None:
    assert len(SEEDS[target]) >= 1, f"no corpus for {target}: run tools.fuzz.write_seed_corpus()"
    for data in SEEDS[target]:
        fuzz.check(target, data)


@pytest.mark.parametrize("target", sorted(fuzz.TARGETS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=512))
def test_random_bytes_are_accepted_or_rejected_with_a_reason(target: str, data: bytes) -> None:
    fuzz.check(target, data)


def _mutations() -> st.SearchStrategy[tuple[str, bytes]]:
    def mutate(args: tuple[str, int, list[tuple[int, int]], int]) -> tuple[str, bytes]:
        target, which, flips, cut = args
        seed = bytearray(SEEDS[target][which % len(SEEDS[target])])
        for pos, value in flips:
            if seed:
                seed[pos % len(seed)] = value
        return target, bytes(seed[: max(0, len(seed) - cut)])

    return st.tuples(
        st.sampled_from(sorted(fuzz.TARGETS)),
        st.integers(0, 10_000),
        st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
        st.integers(0, 40),
    ).map(mutate)


@settings(max_examples=600, deadline=None)
@given(case=_mutations())
def test_torn_and_flipped_valid_inputs_are_accepted_or_rejected_with_a_reason(
    case: tuple[str, bytes],
) -> None:
    fuzz.check(*case)


@pytest.mark.parametrize("target", sorted(fuzz.TARGETS))
def test_a_short_coverage_guided_run_finds_nothing(target: str) -> None:
    code, out = fuzz.run_atheris(target, 2)
    assert code == 0, out[-3000:]
    assert "DONE" in out and "cov:" in out  # it ran, instrumented


@pytest.fixture
def broken() -> Iterator[str]:
    def crashes(data: bytes) -> None:
        if data.startswith(b"x"):
            raise IndexError("a parser bug")

    fuzz.TARGETS["broken"] = crashes
    yield "broken"
    del fuzz.TARGETS["broken"]


def test_the_harness_reports_a_parser_that_crashes(broken: str) -> None:
    fuzz.check(broken, b"fine")
    with pytest.raises(fuzz.Finding, match="IndexError: a parser bug"):
        fuzz.check(broken, b"xyz")
