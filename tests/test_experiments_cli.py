"""The experiment commands end to end, from the command line, on tiny digits models trained
for two steps with ``glowflow train``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from glowflow.cli import main
from glowflow.experiments.class_grid import class_grid
from glowflow.experiments.manipulate import DEFAULT_STRENGTHS
from glowflow.pictures import MIN_WIDTH, layout
from glowflow.store import load_model
from runs import TINY


def train_tiny(folder: Path, *extra: str) -> Path:
    assert main(["train", "--preset", "digits", "--run-dir", str(folder), *TINY, *extra]) == 0
    return folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("runs") / "tiny")


@pytest.fixture(scope="module")
def conditional_run_dir(tmp_path_factory) -> Path:
    return train_tiny(
        tmp_path_factory.mktemp("runs") / "tiny-cond", "--conditional", "--class-loss-weight", "0.1"
    )


def command_json(capsys, *argv: str) -> dict:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def png_size(path: str) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def labelled(rows: int, columns: int, row_labels=(), column_labels=()) -> tuple[int, int]:
    """The size of a titled picture of ``rows x columns`` 8x8 digits with these labels."""
    at = layout((1, 8, 8), rows, columns, "title", row_labels, column_labels)
    return at.width, at.height


def ink(path: str, box: tuple[int, int, int, int]) -> bool:
    """Whether the picture at ``path`` has dark (text) pixels in ``box`` (left, top, right,
    bottom)."""
    with Image.open(path) as image:
        return bool((np.asarray(image.convert("L").crop(box)) < 128).any())


@pytest.mark.parametrize("conditional", [False, True])
def test_interpolate_writes_a_strip_with_exact_endpoints(
    capsys, tmp_path, run_dir, conditional_run_dir, conditional
):
    run = conditional_run_dir if conditional else run_dir
    out = tmp_path / "strip.png"
    report = command_json(
        capsys,
        "interpolate",
        str(run),
        "--a",
        "0",
        "--b",
        "7",
        "--steps",
        "5",
        "--out",
        str(out),
        "--device",
        "cpu",
    )
    assert report["endpoint_max_abs_error"] < 1e-4
    weights = ["0", "0.25", "0.5", "0.75", "1"]
    width, height = png_size(report["out"])
    assert (width, height) == labelled(1, 5, column_labels=weights) and width >= MIN_WIDTH
    assert ink(report["out"], (0, 0, width, height - width // 5))  # title and weights above


def test_interpolate_reads_image_files(capsys, tmp_path, run_dir):
    picture = tmp_path / "ramp.png"
    Image.fromarray((torch.arange(256).reshape(16, 16) % 256).to(torch.uint8).numpy()).save(picture)
    report = command_json(
        capsys, "interpolate", str(run_dir), "--a", str(picture), "--b", "3", "--device", "cpu"
    )
    assert Path(report["out"]).is_file() and report["steps"] == 8
    assert report["endpoint_max_abs_error"] < 1e-4


def test_reconstruct_reports_a_float_precision_error(capsys, tmp_path, run_dir):
    out = tmp_path / "pairs.png"
    report = command_json(
        capsys, "reconstruct", str(run_dir), "-n", "10", "--out", str(out), "--device", "cpu"
    )
    assert report["images"] == 10 and report["max_abs_error"] < 1e-4
    assert report["levels_changed"] == 0
    assert png_size(str(out)) == labelled(2, 10, ["test 0-9", "decoded"])


def test_manipulate_saves_and_reuses_the_direction(capsys, tmp_path, run_dir):
    direction = tmp_path / "three_vs_eight.safetensors"
    first = command_json(
        capsys,
        "manipulate",
        str(run_dir),
        "--attribute",
        "3",
        "--negative",
        "8",
        "--save-direction",
        str(direction),
        "--strengths",
        "-1",
        "0",
        "1",
        "--out",
        str(tmp_path / "a.png"),
        "--device",
        "cpu",
    )
    assert direction.is_file() and first["direction_norm"] > 0
    strengths = ["s = -1", "s = 0", "s = 1"]
    eights = [f"test {i}" for i in (11, 29, 37, 38)]  # the first test images of class 8
    assert png_size(first["out"]) == labelled(4, 3, eights, strengths)
    again = command_json(
        capsys,
        "manipulate",
        str(run_dir),
        "--direction",
        str(direction),
        "--image",
        "0",
        "5",
        "--out",
        str(tmp_path / "b.png"),
        "--device",
        "cpu",
    )
    assert again["direction_norm"] == pytest.approx(first["direction_norm"])
    strengths = [f"s = {s:g}" for s in DEFAULT_STRENGTHS]
    assert png_size(again["out"]) == labelled(2, 6, ["test 0", "test 5"], strengths)


def test_manipulate_rejects_bad_requests(capsys, run_dir):
    for argv in (["--attribute", "12"], ["--attribute", "Smiling"], []):
        assert main(["manipulate", str(run_dir), *argv, "--device", "cpu"]) == 2
        assert "error" in capsys.readouterr().err


def test_conditional_model_log_prob_depends_on_the_label(conditional_run_dir):
    flow = load_model(conditional_run_dir).flow
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)) - 0.5
    with torch.no_grad():
        log_probs = [flow.log_prob(x, torch.full((4,), k)) for k in (1, 6)]
    assert (log_probs[0] - log_probs[1]).abs().min() > 1e-4
    assert class_grid(flow, samples_per_class=2).shape == (10, 2, 1, 8, 8)


def test_sample_names_its_files_by_class(conditional_run_dir):
    run = str(conditional_run_dir)
    for k in (3, 5):
        assert main(["sample", run, "--class", str(k), "-n", "4", "--device", "cpu"]) == 0
    three, five = (conditional_run_dir / "samples" / f"sample_class{k}_t0.7.png" for k in (3, 5))
    with Image.open(three) as a, Image.open(five) as b:
        assert a.size == b.size == labelled(2, 2)
        assert not np.array_equal(np.asarray(a), np.asarray(b))  # neither overwrote the other


def test_sample_writes_a_labelled_class_grid(conditional_run_dir, run_dir, capsys):
    run = str(conditional_run_dir)
    argv = ["sample", run, "--class-grid", "-n", "3", "-t", "0", "0.7", "--device", "cpu"]
    assert main(argv) == 0
    classes = [f"class {k}" for k in range(10)]
    samples = conditional_run_dir / "samples"
    assert png_size(str(samples / "class_grid_t0.7.png")) == labelled(10, 3, classes)
    # at T = 0 a class's samples are one image: one per class, in a row
    assert png_size(str(samples / "class_grid_t0.png")) == labelled(1, 10, (), classes)
    assert main(["sample", str(run_dir), "--class-grid", "--device", "cpu"]) == 2
    assert "class-conditional" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one class, or all of them
        main(["sample", run, "--class", "3", "--class-grid"])


def test_the_temperature_zero_sample_is_shown_once(run_dir, tmp_path):
    out = tmp_path / "grid.png"
    argv = [
        "sample",
        str(run_dir),
        "-t",
        "0",
        "1",
        "-n",
        "16",
        "--out",
        str(out),
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    assert png_size(str(tmp_path / "grid_t0.png")) == labelled(1, 1)
    assert png_size(str(tmp_path / "grid_t1.png")) == labelled(4, 4)


def test_interpolate_names_a_bad_image_file(capsys, tmp_path, run_dir):
    missing, text = tmp_path / "missing.png", tmp_path / "notes.png"
    text.write_text("not an image")
    for path, message in (
        (missing, f"no image file at {missing}"),
        (text, f"{text} is not an image"),
    ):
        argv = ["interpolate", str(run_dir), "--a", str(path), "--b", "3", "--device", "cpu"]
        assert main(argv) == 2
        assert message in capsys.readouterr().err
