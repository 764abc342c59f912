"""Engines that break, garble or hang in the middle of a pull: each pull still ends as an
observation (outcome `error`), quickly, and the run goes on."""

from __future__ import annotations

import time

import pytest

from matrix.engines.model import Engine, Timeouts
from matrix.engines.pull import analysis_key, pull_many, pull_one
from tests.engines.fake_engine import BREAK_OFF, GARBLE, STALL, faulty_engine, silent_engine

REFERENCES = ["127.0.0.1:1/demo/app:1.0", "127.0.0.1:1/demo/app:2.0"]
AMD64 = "linux/amd64"
QUICK = Timeouts(control=0.5, stream=0.5)


@pytest.mark.parametrize("fault", [BREAK_OFF, GARBLE])
def test_a_broken_pull_stream_is_an_error_of_that_pull(fault: str) -> None:
    with faulty_engine(fault) as endpoint:
        engine = Engine(endpoint, "99.0.0-fake", name="faulty")
        observation = pull_one(engine, REFERENCES[0], AMD64, pauses=(), timeouts=QUICK)

    assert observation.outcome == "error"
    assert observation.error_class == ""
    assert observation.message.startswith(f"engine at {endpoint} stopped answering")


@pytest.mark.parametrize("fault", [BREAK_OFF, GARBLE])
def test_an_engine_that_still_answers_after_a_broken_stream_keeps_pulling(fault: str) -> None:
    with faulty_engine(fault) as endpoint:
        engine = Engine(endpoint, "99.0.0-fake", name="faulty")
        observations = pull_many([engine], REFERENCES, [AMD64], timeouts=QUICK)

    assert [o.outcome for o in observations] == ["error", "error"]
    assert [o.tag for o in observations] == ["1.0", "2.0"]
    # Both pulls were tried: the engine answered its ping after the first.
    assert all("stopped answering" in o.message for o in observations)


def test_a_hung_engine_costs_one_timeout_and_its_other_pulls_are_quick_errors() -> None:
    with silent_engine() as endpoint:
        engine = Engine(endpoint, "", name="hung")
        started = time.monotonic()
        observations = pull_many([engine], REFERENCES, [AMD64, "linux/arm64"], timeouts=QUICK)
        took = time.monotonic() - started

    assert [o.outcome for o in observations] == ["error"] * 4
    assert "does not answer" in observations[0].message
    assert all(o.message.startswith("not pulled: ") for o in observations[1:])
    # One control timeout (the version negotiation), then nothing more is asked of it.
    assert took < 5


def test_a_pull_stream_that_falls_silent_times_out_and_the_engine_is_given_up() -> None:
    with faulty_engine(STALL) as endpoint:
        engine = Engine(endpoint, "99.0.0-fake", name="stalled")
        started = time.monotonic()
        observations = pull_many([engine], REFERENCES, [AMD64], timeouts=QUICK)
        took = time.monotonic() - started

    assert [o.outcome for o in observations] == ["error", "error"]
    assert "stopped answering" in observations[0].message
    assert "timed out" in observations[0].message.lower()
    assert observations[1].message.startswith("not pulled: ")
    assert took < 5


def test_the_other_engines_pulls_are_kept_when_one_hangs() -> None:
    with silent_engine() as hung, faulty_engine(GARBLE) as garbling:
        engines = [Engine(hung, "", name="hung"), Engine(garbling, "99.0.0-fake", name="g")]
        observations = pull_many(engines, REFERENCES, [AMD64], timeouts=QUICK)

    assert len(observations) == 4
    assert [o.client_version for o in observations] == ["", "", "99.0.0-fake", "99.0.0-fake"]
    assert [o.outcome for o in observations] == ["error"] * 4
    assert "stopped answering" in observations[3].message


class _BrokenAnalysis:
    """An analysis object that fails when read, standing in for a fault of the harness."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(f"cannot read {name}")


def test_a_fault_of_the_harness_costs_that_observation_only() -> None:
    with faulty_engine(GARBLE) as endpoint:
        engine = Engine(endpoint, "99.0.0-fake", name="faulty")
        key = analysis_key(REFERENCES[0])
        analyses: dict = {key: _BrokenAnalysis()}
        observations = pull_many([engine], REFERENCES, [AMD64], analyses=analyses, timeouts=QUICK)

    assert [o.outcome for o in observations] == ["error", "error"]
    assert "harness failure" in observations[0].message
    assert "cannot read" in observations[0].message
    assert "stopped answering" in observations[1].message
