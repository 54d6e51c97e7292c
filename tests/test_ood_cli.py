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


def png_folder(folder: Path, images: list[np.ndarray]) -> str:
    """``images`` (uint8 ``(H, W)`` grey or ``(H, W, 3)`` RGB) as PNGs in ``folder``; its SPEC."""
    from PIL import Image

    folder.mkdir()
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{index:02d}.png")
    return f"folder:{folder}"


def test_ood_fits_images_of_another_size_to_the_model(capsys, tmp_path, runs):
    """Grey PNGs larger than the model's 8x8, or not square, are centre-cropped and resized to
    it by design (:mod:`glowflow.ood.specs`): a constant 16x16 image comes out the same
    constant, its 8-bit level taken to the model's levels; a 12x8 one comes out its centre 8x8;
    and ``glowflow ood`` scores such a folder."""
    from glowflow.ood.specs import load_set
    from glowflow.store import load_model

    data = load_model(runs["model"]).data
    shape, n_bins = tuple(data.shape), data.n_bins
    values = [0, 37, 128, 200, 255]
    large = png_folder(tmp_path / "large", [np.full((16, 16), v, np.uint8) for v in values])
    fitted = load_set(large, shape, n_bins)
    expected = torch.tensor(values).mul(n_bins).div(256, rounding_mode="floor")
    assert torch.equal(fitted.levels.long(), expected.reshape(-1, 1, 1, 1).expand(-1, *shape))
    wide = np.random.default_rng(0).integers(0, 256, (4, 8, 12), dtype=np.uint8)
    cropped = load_set(png_folder(tmp_path / "wide", list(wide)), shape, n_bins)
    centre = torch.from_numpy(wide[:, None, :, 2:10].astype(np.int64)) * n_bins // 256
    assert torch.equal(cropped.levels.long(), centre)
    report = tmp_path / "report"
    argv = ["ood", str(runs["model"]), "--in", "digits:test", "--out", large, "--limit", "20"]
    assert main([*argv, "--report", str(report), "--device", "cpu"]) == 0
    assert json.loads((report / "report.json").read_text())["sets"][large]["images"] == 5


@pytest.fixture(scope="module")
def rgb_model(tmp_path_factory) -> Path:
    """A 3x8x8 model folder (ml-tarflow's converted fixture): another image shape than
    ``runs``' 1x8x8 digits models."""
    from glowflow.convert import convert

    checkpoint = Path(__file__).parent / "fixtures" / "tarflow" / "conditional" / "model.pth"
    return convert("tarflow", checkpoint).save(tmp_path_factory.mktemp("rgb") / "model")


def one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("glowflow ood:")]
    assert len(lines) == 1, err
    return lines[0]


def test_ood_refuses_images_of_another_channel_count_in_one_line(capsys, tmp_path, runs, rgb_model):
    """RGB PNGs for the grey digits model, and grey PNGs for an RGB model: exit 2 and one line
    naming the folder and both channel counts."""
    rgb = png_folder(tmp_path / "rgb", [np.zeros((8, 8, 3), np.uint8)] * 3)
    grey = png_folder(tmp_path / "grey", [np.zeros((8, 8), np.uint8)] * 3)
    cases = [
        (runs["model"], ["--in", "digits:test", "--out", rgb], rgb, "3-channel", "takes 1"),
        (rgb_model, ["--in", grey, "--reference", grey, "--out", "hflip"], grey, "1-channel", "3"),
    ]
    for model, argv, spec, found, wanted in cases:
        assert main(["ood", str(model), *argv, "--device", "cpu"]) == 2
        line = one_error(capsys.readouterr().err)
        assert spec in line and found in line and wanted in line, line


def test_ood_refuses_a_background_of_another_image_shape_in_one_line(capsys, runs, rgb_model):
    """A ``--background`` model of 3x8x8 images for a 1x8x8 model: exit 2, one line naming both
    models and their shapes, before any image is scored."""
    argv = ["ood", str(runs["model"]), "--in", "digits:test", "--out", "hflip"]
    assert main([*argv, "--background", str(rgb_model), "--device", "cpu"]) == 2
    line = one_error(capsys.readouterr().err)
    assert str(rgb_model) in line and str(runs["model"]) in line
    assert "(3, 8, 8)" in line and "(1, 8, 8)" in line
