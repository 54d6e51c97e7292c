"""``glowflow ood`` end to end on tiny digits models (two training steps), as run folders and
as pretrained folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from glowflow.cli import main
from glowflow.training.export import export_run
from runs import TINY


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_tiny(folder: Path, *extra: str) -> Path:
    assert main(["train", "--preset", "digits", "--run-dir", str(folder), *TINY, *extra]) == 0
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {
        "model": train_tiny(root / "model"),
        "background": train_tiny(root / "background", "--num-glow-blocks", "1"),
    }


def test_ood_writes_json_markdown_scores_and_histograms(capsys, tmp_path, runs):
    report = tmp_path / "report"
    assert (
        main(
            [
                "ood",
                str(runs["model"]),
                "--in",
                "digits:test",
                "--out",
                "constant",
                "hflip",
                "--out",
                "noise:uniform",
                "--background",
                str(runs["background"]),
                "--typicality-batch",
                "4",
                "--report",
                str(report),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "## AUROC" in printed and "| likelihood-ratio |" in printed
    result = json.loads((report / "report.json").read_text())
    assert result["out"] == ["constant", "hflip", "noise:uniform"]
    assert result["reference"] == "digits:val"  # the digits preset holds out 200 images
    assert result["scores"] == [
        "bpd",
        "typicality",
        "complexity-png",
        "complexity-zlib",
        "likelihood-ratio",
        "level-1",
        "level-2",
    ]
    for by_score in result["metrics"].values():
        for metrics in by_score.values():
            assert set(metrics) == {"auroc", "aupr", "fpr95"}
            assert all(0.0 <= value <= 1.0 for value in metrics.values())
    digits = result["sets"]["digits:test"]
    decomposition = digits["decomposition"]
    parts = sum(decomposition["latent_bpd"]) + sum(decomposition["logdet_bpd"])
    assert decomposition["total_bpd"] == pytest.approx(parts + decomposition["quantization_bpd"])
    assert digits["images"] == 297
    scores = np.load(report / "scores.npz")
    assert scores["digits:test/typicality"].shape == (297 // 4,)
    assert scores["hflip/level-2"].shape == (297,)
    for name in ("constant", "hflip", "noise-uniform"):
        assert (report / f"hist_{name}.png").stat().st_size > 1000
    assert "Per-level decomposition" in (report / "report.md").read_text()


def test_ood_reads_pretrained_folders(capsys, tmp_path, runs):
    folder = export_run(runs["model"], tmp_path / "pretrained")
    report = tmp_path / "report"
    assert (
        main(
            [
                "ood",
                str(folder),
                "--in",
                "digits:test",
                "--out",
                "vflip",
                "--limit",
                "40",
                "--report",
                str(report),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    result = json.loads((report / "report.json").read_text())
    assert result["sets"]["digits:test"]["images"] == 40
    assert "likelihood-ratio" not in result["scores"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--in", "constant", "--out", "hflip"], "is a transformation"),
        (["--in", "digits:test", "--out", "rotated"], "no image set"),
        (["--in", "digits:test", "--out", "hflip", "hflip"], "hflip repeats"),
        (["--in", "digits:test", "--out", "hflip", "--typicality-batch", "0"], "must be >= 1"),
        (
            ["--in", "digits:test", "--out", "cifar10:test", "--data-root", "/nonexistent"],
            "/nonexistent",
        ),
    ],
)
def test_ood_names_the_problem(capsys, runs, argv, message):
    assert main(["ood", str(runs["model"]), *argv, "--device", "cpu"]) == 2
    assert message in capsys.readouterr().err
