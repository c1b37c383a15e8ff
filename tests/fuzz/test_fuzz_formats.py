"""Brief fixed-seed mutation fuzzing of every format handler and the label pipeline.

Each format gets a few dozen mutants (bit flips, inserts, truncation, huge
length fields, duplicated chunks/segments/boxes, nesting), run in a watchdog
child with a time and memory limit per input. Every outcome must be "ok" or
"rejected" (one of the project's own errors): a crash, a hang or running out
of memory fails the test, and the input is saved under tests/fuzz/regressions/
so it stays a test from then on. The long run is ``benchmarks/fuzz.py``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.fuzz.bounded import run_bounded
from tests.fuzz.mutate import SEED_BUILDERS, SHORT, mutants
from tests.fuzz.targets import handler_round, label_round

REGRESSIONS = Path(__file__).parent / "regressions"
MUTANTS_PER_FORMAT = 24  # a few seconds per format on a loaded 2-core machine
SECONDS_PER_INPUT = 20  # generous: a hang is minutes, normal inputs take milliseconds
MEMORY_PER_INPUT = 1 << 30


def save_regression(fmt: str, data: bytes) -> Path:
    REGRESSIONS.mkdir(exist_ok=True)
    path = REGRESSIONS / f"{fmt}-{hashlib.sha256(data).hexdigest()[:16]}.bin"
    path.write_bytes(data)
    return path


def _check(fmt: str, inputs: list[bytes], target, save: bool = True) -> None:
    outcomes = run_bounded(target, inputs, SECONDS_PER_INPUT, MEMORY_PER_INPUT)
    bad = [o for o in outcomes if o.status not in ("ok", "rejected")]
    saved = [save_regression(fmt, inputs[o.index]) if save else "" for o in bad]
    assert not bad, [(o.status, o.detail[-500:], str(p)) for o, p in zip(bad, saved, strict=True)]
    assert len(outcomes) == len(inputs)


@pytest.mark.parametrize("media_type", list(SEED_BUILDERS), ids=list(SHORT.values()))
def test_mutants_read_digest_and_write_without_crashing(media_type):
    _check(SHORT[media_type], mutants(media_type, MUTANTS_PER_FORMAT, seed=1), handler_round)


@pytest.mark.parametrize("media_type", list(SEED_BUILDERS), ids=list(SHORT.values()))
def test_mutants_label_without_crashing(media_type):
    _check(SHORT[media_type], mutants(media_type, MUTANTS_PER_FORMAT // 2, seed=2), label_round)


def test_saved_regression_inputs_stay_fixed():
    files = sorted(REGRESSIONS.glob("*.bin"))
    if not files:
        pytest.skip("no saved regression inputs")
    inputs = [p.read_bytes() for p in files]
    _check("regression", inputs, handler_round, save=False)
    _check("regression", inputs, label_round, save=False)
