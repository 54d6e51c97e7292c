"""Model selection: validation split, best checkpoint, early stopping, time budget."""

from __future__ import annotations

import json

import pytest
import torch

from glowflow.store import load_model
from glowflow.store.loader import BEST, checkpoint_folder
from glowflow.training.checkpoint import read_state
from glowflow.training.schedule import LRSchedule
from glowflow.training.trainer import Trainer, train
from test_train import single_thread, tiny  # noqa: F401  (autouse fixture)


def test_validation_chooses_the_best_checkpoint_and_the_test_set_chooses_nothing(
    tmp_path, monkeypatch
):
    evaluated = []
    during, final = Trainer._bpd, Trainer._final_test

    def recording(self, dataset, draws):  # validations, and test rows asked for
        evaluated.append((self.state.step, "val" if dataset is self.val_set else "test"))
        return during(self, dataset, draws)

    def final_recording(self, flow, dequantizer, label):  # the last and the best checkpoints
        evaluated.append((self.state.step, "test"))
        return final(self, flow, dequantizer, label)

    monkeypatch.setattr(Trainer, "_bpd", recording)
    monkeypatch.setattr(Trainer, "_final_test", final_recording)
    result = train(tiny(tmp_path, max_steps=6, eval_every=2, val_size=100))
    # validations at steps 2, 4, 6; the test set only at the end (last and best checkpoints)
    assert [e for e in evaluated if e[1] == "val"] == [(2, "val"), (4, "val"), (6, "val")]
    assert {step for step, split in evaluated if split == "test"} == {6}
    rows = {int(r["step"]): r for r in result.metrics}
    assert all(r["test_bpd"] is None for r in rows.values())
    val = {step: rows[step]["val_bpd"] for step in (2, 4, 6)}
    best_step = min(val, key=val.get)
    summary = json.loads((tmp_path / "result.json").read_text())
    assert summary["best"]["step"] == best_step
    assert summary["best"]["val_bpd"] == pytest.approx(val[best_step], rel=1e-5)  # csv: 6 digits
    assert summary["last"]["step"] == 6 and summary["test_bpd"] == summary["best"]["test_bpd"]
    assert result.best_checkpoint == tmp_path / "checkpoints" / BEST
    assert checkpoint_folder(tmp_path) == result.best_checkpoint  # eval and sample read it
    assert load_model(tmp_path).step == best_step


def test_test_rows_on_request(tmp_path):
    result = train(tiny(tmp_path, max_steps=4, test_every=2))
    assert [r["step"] for r in result.metrics if r["test_bpd"] is not None] == [2, 4]


def test_early_stopping_and_resume_keep_the_best_record(tmp_path, monkeypatch):
    original = Trainer._validate
    scores = iter([3.0, 2.0, 2.5, 2.6, 2.7, 2.8])

    def scripted(self):  # validation bits/dim: best at the second evaluation, then worse
        row = original(self)
        value = next(scores)
        if value < self.state.best.val_bpd or self.state.best.step == self.state.step:
            self.state.best.val_bpd, self.state.best.step, self.state.best.evals_since = (
                value,
                self.state.step,
                0,
            )
        return {**row, "val_bpd": value}

    monkeypatch.setattr(Trainer, "_validate", scripted)
    result = train(tiny(tmp_path, max_steps=12, eval_every=1, checkpoint_every=1, early_stopping=2))
    assert result.steps == 4  # improvements at 1 and 2, none at 3 and 4
    state = read_state(result.checkpoint)
    assert state["best"]["step"] == 2 and state["best"]["evals_since"] == 2
    summary = json.loads((tmp_path / "result.json").read_text())
    assert summary["early_stopped"] and summary["best"]["step"] == 2


def test_time_budget_stops_and_anneals(tmp_path):
    result = train(
        tiny(
            tmp_path,
            max_steps=10**6,
            max_time=3.0,
            lr_schedule="cosine",
            log_every=1,
            eval_every=10**5,
            checkpoint_every=10**5,
        )
    )
    assert 1 <= result.steps < 10**6
    summary = json.loads((tmp_path / "result.json").read_text())
    assert summary["steps"] == result.steps
    lrs = [r["lr"] for r in result.metrics]
    assert lrs[-1] < 0.5 * max(lrs)  # the cosine followed the budget, not max_steps


def test_schedule_follows_the_given_progress():
    schedule = LRSchedule(1.0, warmup_steps=1, total_steps=100, kind="cosine")
    assert schedule(10) == pytest.approx(0.5 * (1 + torch.cos(torch.tensor(0.1 * torch.pi)).item()))
    assert schedule(10, progress=0.5) == pytest.approx(0.5)
    assert schedule(10, progress=1.0) == pytest.approx(0.0)
