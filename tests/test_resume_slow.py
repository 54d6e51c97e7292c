"""Runs that resume, beyond the plain Glow run of ``test_faults_slow.py``
(``pytest -m slow tests/test_resume_slow.py``): a variational-dequantization run, a
``--max-time`` run, an ``--init-from`` run and a run of every family, each SIGKILLed inside
a checkpoint write half way through its checkpoints (:func:`test_faults.start_driver`), then
continued with ``--resume auto``: every metrics row, result.json, and every tensor of every
checkpoint (the dequantizer's and the optimizer's included) equal an uninterrupted run's
(:func:`test_faults.assert_same_run`).

A kill inside a write is deterministic (the Nth checkpoint file, cut in half), so each case
asserts the exact state, not a likely one. The ``--max-time`` case gives a budget that never
binds (an hour, beside ``--max-steps``; a constant learning rate, so the time fraction never
enters a step): it asserts that a time-budgeted run keeps its budget and its elapsed time
across the kill and still repeats the uninterrupted run, not that a budget spent by the clock
stops at the same step (the clock is not deterministic).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from glowflow.cli import main
from glowflow.families import FAMILIES
from glowflow.store.loader import read_weights
from test_faults import RUN, assert_same_run, counted_train, driver_stderr, start_driver
from test_train import single_thread  # noqa: F401  (autouse fixture)

pytestmark = pytest.mark.slow

GLOW_ONLY = ("--num-glow-blocks", "--num-steps-per-block", "--hidden-channels")
FAMILY_RUN = [
    value
    for index, value in enumerate(RUN)
    if value not in GLOW_ONLY and (index == 0 or RUN[index - 1] not in GLOW_ONLY)
]
""":data:`test_faults.RUN` without Glow's size flags (each family's own defaults instead)."""


def kill_and_resume(tmp_path: Path, argv: list[str]) -> Path:
    """Train ``argv`` uninterrupted (``tmp_path/reference``) and once more in a child process
    SIGKILLed inside the middle one of its checkpoint files (``tmp_path/run``), resumed here
    with ``--resume auto``; asserts the two runs end the same, and returns the resumed one."""
    reference, run = tmp_path / "reference", tmp_path / "run"
    files = counted_train(["--run-dir", str(reference), *argv])
    assert files >= 2
    spec = {"target": "checkpoint", "at": files // 2 + 1}
    child = start_driver(tmp_path, {**spec, "argv": ["train", "--run-dir", str(run), *argv]})
    assert child.wait(timeout=600) == -9, driver_stderr(child)
    assert main(["train", "--run-dir", str(run), *argv, "--resume", "auto"]) == 0
    assert_same_run(run, reference)
    return run


def test_variational_dequantization_run_resumes_with_its_dequantizer(tmp_path):
    run = kill_and_resume(tmp_path, [*RUN, "--dequantization", "variational"])
    dequantizers = sorted((run / "checkpoints").glob("step-*/dequantizer.safetensors"))
    assert dequantizers and all(read_weights(path)[0] for path in dequantizers)


def test_time_budgeted_run_resumes_to_the_same_state(tmp_path):
    kill_and_resume(tmp_path, [*RUN, "--max-time", "3600", "--lr-schedule", "constant"])


def test_init_from_run_resumes_to_the_same_state(tmp_path):
    source = tmp_path / "source"
    assert main(["train", "--run-dir", str(source), *RUN, "--max-steps", "2"]) == 0
    kill_and_resume(tmp_path, [*RUN, "--init-from", str(source)])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_resumes_to_the_same_state(tmp_path, family):
    kill_and_resume(tmp_path, [*FAMILY_RUN, "--family", family])
