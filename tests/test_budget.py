"""Cadences that follow the budget, the bounds each figure is, and the recipes of a preset."""

import json
import math

import pytest

from glowflow.cli import main
from glowflow.errors import ConfigError
from glowflow.families import BEST_RECIPES, FAMILIES, PRESETS
from glowflow.training.budget import Budget
from glowflow.training.config import (
    TrainConfig,
    preset_settings,
    resolve_config,
    run_field_types,
)
from glowflow.training.evaluate import Bound, BpdResult, tightest
from glowflow.training.trainer import train
from runs import TINY_TRAINING
from test_train import single_thread  # noqa: F401  (autouse fixture)


def test_progress_is_the_further_of_steps_and_time():
    both = Budget(max_steps=100, max_time=10.0, validations=10)
    assert both.progress(50, 2.0) == 0.5 and both.progress(10, 8.0) == 0.8
    assert both.progress(500, 0.0) == 1.0 and both.spent(100, 0.0) and both.spent(0, 10.0)
    assert not both.spent(99, 9.9)
    assert Budget(0, 10.0, 10).progress(10**9, 5.0) == 0.5  # no step limit: time alone
    assert Budget(100, 0.0, 10).progress(25, 10**6) == 0.25  # no time limit: steps alone


def test_marks_count_the_budget_validations_due():
    budget = Budget(max_steps=1000, max_time=0.0, validations=5)
    assert [budget.mark(s, 0.0) for s in (0, 199, 200, 399, 400, 999, 1000)] == [
        0, 0, 1, 1, 2, 4, 5,
    ]  # fmt: skip
    assert Budget(1000, 0.0, 0).mark(1000, 0.0) == 0  # no budget validations
    slow = Budget(max_steps=0, max_time=60.0, validations=10)
    assert slow.mark(3, 5.9) == 0 and slow.mark(4, 6.0) == 1 and slow.mark(5, 60.0) == 10


def test_a_time_budget_without_steps_lifts_the_step_limit():
    assert resolve_config(overrides={"max_time": 30.0}).max_steps == 0
    assert resolve_config(overrides={"max_time": 30.0, "max_steps": 50}).max_steps == 50
    assert resolve_config().max_steps == PRESETS["digits"].get("max_steps", 1000)
    with pytest.raises(ConfigError, match="max_steps 0"):
        TrainConfig(max_steps=0)


DEFAULT_RUN_PRESETS = ("digits", "cifar10", "tarflow")
"""The presets the default test run budgets (a Glow on digits, a real dataset's Glow cadences,
a transformer flow); the slow run takes every preset."""


@pytest.mark.parametrize(
    "preset",
    [
        preset if preset in DEFAULT_RUN_PRESETS else pytest.param(preset, marks=pytest.mark.slow)
        for preset in sorted(PRESETS)
    ],
)
def test_a_tiny_time_budget_validates_at_least_five_times(preset, tmp_path):
    """Every preset's run settings (its cadences: thousands of steps between validations for
    the real datasets) on the digits with the family's small model and a 5-second budget: the
    budget's validations still choose the model, and result.json says how many did. (A
    validation here costs well under a tenth of the budget; one that costs more merges with
    the next.)"""
    settings = preset_settings(preset, PRESETS[preset]["family"])
    run = {k: v for k, v in settings.items() if k in run_field_types()}
    run.update(
        dataset="digits",
        image_size=None,
        n_bits=None,
        hflip=False,
        val_size=100,
        threads=1,
        num_workers=0,
        batch_size=16,
        init_images=32,
        max_time=5.0,
        max_steps=0,
        eval_batch_size=100,
        final_eval_draws=1,
        sample_count=4,
        sample_temperatures=(1.0,),
        progress=False,
        device="cpu",
        run_dir=str(tmp_path / preset),
    )
    family = FAMILIES[settings["family"]]
    config = TrainConfig.from_dict({**run, "model": family.template.to_dict()})
    assert config.eval_every >= 100  # the preset's own cadence would not validate in 3 s
    train(config)
    result = json.loads((tmp_path / preset / "result.json").read_text())
    assert result["validations"] >= 5, result
    assert result["best_chosen_by"] == f"{result['validations']} validations"
    assert result["best"]["step"] > 0 and result["wall_time_s"] >= 5.0


def test_a_run_without_validation_says_so(tmp_path, capsys):
    folder = tmp_path / "noval"
    args = ["--val-size", "0", "--max-steps", "2", "--run-dir", str(folder)]
    assert main(["train", *args, *TINY_TRAINING]) == 0
    result = json.loads((folder / "result.json").read_text())
    assert result["validations"] == 0
    assert result["best_chosen_by"] == "no validation: the best checkpoint is the last"
    assert "no validation ran: the last checkpoint" in capsys.readouterr().out


def test_the_headline_is_the_tightest_bound_and_each_is_named(tmp_path, capsys):
    folder = tmp_path / "bounds"
    extra = ["--final-iw-samples", "4", "--final-eval-draws", "2"]
    assert (
        main(["train", "--max-steps", "3", "--run-dir", str(folder), *TINY_TRAINING, *extra]) == 0
    )
    line = capsys.readouterr().out
    result = json.loads((folder / "result.json").read_text())
    bounds = result["best"]["test_bounds"]
    assert {b["bound"] for b in bounds} == {"importance-weighted", "variational"}
    assert result["test_bpd"] == min(b["bpd"] for b in bounds) == bounds[0]["bpd"]
    by_kind = {b["bound"]: b for b in bounds}
    assert by_kind["importance-weighted"]["draws"] == 4 and by_kind["variational"]["draws"] == 2
    assert result["test_bound"] in (
        "importance-weighted bound, K=4",
        "variational bound, 2 draws",
    )
    assert f"[{result['test_bound']}; " in line and "bound, " in line.split(";")[1]


def test_tightest_picks_the_smallest_figure():
    loose = Bound("variational", BpdResult(2.2, 0.02, 100, 8))
    tight = Bound("importance-weighted", BpdResult(2.1, 0.02, 100, 16))
    assert tightest([loose, tight]) is tight
    assert tight.name == "importance-weighted bound, K=16"
    assert loose.name == "variational bound, 8 draws"


def test_the_paper_recipe_undoes_exactly_the_searched_settings():
    for preset, chosen in BEST_RECIPES.items():
        best, paper = preset_settings(preset), preset_settings(preset, recipe="paper")
        assert {k for k in best if best[k] != paper.get(k)} == set(chosen)
    with pytest.raises(ConfigError, match="unknown recipe"):
        preset_settings("digits", recipe="fancy")
    assert math.isfinite(resolve_config(recipe="paper").lr)


def test_eval_names_its_bounds_and_leads_with_the_tightest(tmp_path, capsys):
    folder = tmp_path / "run"
    assert main(["train", "--max-steps", "2", "--run-dir", str(folder), *TINY_TRAINING]) == 0
    capsys.readouterr()
    assert main(["eval", str(folder), "--draws", "2", "--iw-samples", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["bound"] == "variational bound, 2 draws"  # the digits preset's best recipe
    assert report["iw_bound"] == "importance-weighted bound, K=3"
    assert report["headline_bpd"] == min(report["bpd"], report["iw_bpd"])
    assert main(["eval", str(folder), "--draws", "2", "--iw-samples", "3"]) == 0
    captured = capsys.readouterr()
    assert f"bits/dim {report['headline_bpd']:.4f}" in captured.out
    assert report["headline_bound"] in captured.out and "K=3" in captured.err  # progress bars


def test_a_time_budget_takes_the_recipe_searched_for_one():
    from glowflow.families import TIME_RECIPES

    timed = resolve_config(overrides={"max_time": 300.0})
    assert timed.max_steps == 0 and timed.lr == TIME_RECIPES["digits"]["lr"]
    assert (
        resolve_config(overrides={"max_time": 300.0, "max_steps": 5000}).lr
        == (BEST_RECIPES["digits"]["lr"])
    )  # a step budget keeps the default budget's recipe
    assert resolve_config(overrides={"max_time": 300.0, "lr": 5e-4}).lr == 5e-4
    assert resolve_config(recipe="paper", overrides={"max_time": 300.0}).lr == 1e-3
    other = resolve_config(overrides={"max_time": 300.0, "family": "realnvp"})
    assert other.lr == 1e-3  # a recipe searched for Glow stays Glow's
