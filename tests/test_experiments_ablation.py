"""The ablation driver with a stand-in trainer, and the real ``glowflow ablate`` on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glowflow.cli import main
from glowflow.experiments.ablation import (
    orderings,
    plot_curves,
    run_ablation,
    summarize,
    variant_configs,
    write_table,
)
from glowflow.training.config import TrainConfig
from glowflow.training.trainer import TrainResult

GAIN = {"reverse": 0.0, "shuffle": 0.1, "invconv": 0.2, "additive": 0.0, "affine": 0.05}


def paper_like_train(config: TrainConfig, resume: str | None = None) -> TrainResult:
    """A stand-in for ``train``: bits/dim ordered as in the paper, plus a little per seed."""
    bpd = 3.0 - GAIN[config.model.permutation] - GAIN[config.model.coupling] + 0.01 * config.seed
    metrics = [{"step": 1.0, "val_bpd": bpd + 1.0}, {"step": 2.0, "val_bpd": bpd}]
    return TrainResult(
        Path(config.run_dir),
        2,
        bpd,
        0.0,
        1.0,
        Path(config.run_dir),
        metrics,
        Path(config.run_dir),
        bpd,
        (),
        2,
    )


def test_variants_share_everything_but_permutation_coupling_and_seed(tmp_path):
    configs = variant_configs(TrainConfig(max_steps=7), [0, 1], tmp_path)
    assert len(configs) == 12
    assert {(c.model.permutation, c.model.coupling, c.seed) for c in configs} == {
        (p, c, s)
        for p in ("reverse", "shuffle", "invconv")
        for c in ("additive", "affine")
        for s in (0, 1)
    }
    assert len({c.run_dir for c in configs}) == 12
    shared = {(c.max_steps, c.batch_size, c.lr, c.model.hidden_channels) for c in configs}
    assert shared == {(7, 64, 1e-3, TrainConfig().model.hidden_channels)}


def test_ablation_table_plot_and_orderings(tmp_path):
    runs = run_ablation(TrainConfig(), [0, 1], tmp_path, train_fn=paper_like_train)
    summaries = summarize(runs)
    assert [s.name for s in summaries][:2] == ["invconv+affine", "invconv+additive"]
    assert summaries[0].std == pytest.approx(0.01 / 2**0.5)
    assert all(measured == paper for measured, paper in orderings(summaries).values())
    write_table(summaries, tmp_path / "t.csv", tmp_path / "t.md")
    plot_curves(runs, tmp_path / "t.png")
    assert (tmp_path / "t.csv").read_text().count("\n") == 7
    assert "| 1 | invconv | affine | 2.7550 ± 0.0071 | 2 |" in (tmp_path / "t.md").read_text()
    assert (tmp_path / "t.png").stat().st_size > 0


def test_finished_variants_are_read_back_not_retrained(tmp_path):
    done = tmp_path / "reverse-additive-seed0"
    done.mkdir()
    (done / "result.json").write_text(json.dumps({"test_bpd": 9.0, "wall_time_s": 5.0}))
    header = (
        "step,train_bpd,val_bpd,val_bpd_stderr,test_bpd,test_bpd_stderr,lr,grad_norm,"
        "images_per_s,skipped_steps,elapsed_s"
    )
    (done / "metrics.csv").write_text(f"{header}\n4,,9.5,,,,,,,,\n")
    trained = []

    def recording_train(config: TrainConfig, resume: str | None = None) -> TrainResult:
        trained.append(config.name)
        return paper_like_train(config, resume)

    runs = run_ablation(TrainConfig(), [0], tmp_path, train_fn=recording_train)
    assert "reverse-additive-seed0" not in trained and len(trained) == 5
    assert runs[0].test_bpd == 9.0 and runs[0].curve == [(4.0, 9.5)]


def test_ablate_command_trains_six_variants(tmp_path, capsys):
    out = tmp_path / "ablation"
    argv = [
        "ablate",
        "--max-steps",
        "1",
        "--eval-every",
        "1",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--set",
        "hidden_channels=8",
        "--set",
        "num_steps_per_block=2",
        "--set",
        "init_images=64",
        "--set",
        "final_eval_draws=1",
        "--set",
        "sample_count=4",
        "--set",
        "sample_temperatures=0.7",
    ]
    assert main(argv) == 0
    for name in ("ablation.csv", "ablation.md", "ablation.png"):
        assert (out / name).is_file()
    assert "| rank | permutation | coupling |" in capsys.readouterr().out
    assert len(list(out.glob("*-seed0/result.json"))) == 6
    assert main(["ablate", "--set", "seed=3"]) == 2
