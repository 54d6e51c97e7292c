"""``glowflow train``, ``eval`` and ``sample`` end to end on the embedded digits."""

import json
import math

import numpy as np
import pytest
from PIL import Image

from glowflow.cli import build_parser, main
from glowflow.training.config import field_types
from runs import TINY_TRAINING
from test_train import single_thread  # noqa: F401  (autouse fixture)

TINY = [*TINY_TRAINING, "--log-every", "1"]


def train_cli(run_dir, *extra):
    return main(["train", "--run-dir", str(run_dir), "--max-steps", "2", *TINY, *extra])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A two-step digits run (with TensorBoard), shared by the tests that only read it."""
    folder = tmp_path_factory.mktemp("run") / "digits"
    assert train_cli(folder, "--tensorboard", "--threads", "1") == 0
    return folder


def test_two_step_run_writes_every_file(run_dir):
    expected = [
        "config.json",
        "metrics.csv",
        "result.json",
        "bpd.png",
        "checkpoints/step-00000001/model.safetensors",  # the budget's validations checkpoint
        "checkpoints/step-00000002/model.safetensors",
        "checkpoints/step-00000002/state.pt",
    ]
    expected += [f"samples/step-00000002_t{t}.png" for t in ("0", "0.5", "0.7", "1")]
    for name in expected:
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "tb").iterdir())
    assert json.loads((run_dir / "config.json").read_text())["max_steps"] == 2
    result = json.loads((run_dir / "result.json").read_text())
    assert result["steps"] == 2 and math.isfinite(result["test_bpd"])
    header, *rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert header.split(",")[:4] == ["step", "train_bpd", "val_bpd", "val_bpd_stderr"]
    assert "test_bpd" in header  # filled only on rows asked for with --test-every
    assert "skipped_steps" in header and "images_per_s" in header and len(rows) == 2
    with Image.open(run_dir / "samples/step-00000002_t0.7.png") as picture:
        assert picture.mode == "L"  # digits are grey


def test_eval_json_is_well_formed(run_dir, capsys):
    assert main(["eval", str(run_dir), "--json", "--draws", "2", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "test" and report["num_images"] == 297 and report["draws"] == 2
    assert math.isfinite(report["bpd"]) and 0 < report["stderr"] < 1
    assert report["step"] == 2 and report["n_bins"] == 17
    assert main(["eval", str(run_dir), "--json", "--draws", "1", "--device", "cpu"]) == 0
    again = json.loads(capsys.readouterr().out)  # the run's seed, batches and draws
    bounds = json.loads((run_dir / "result.json").read_text())["best"]["test_bounds"]
    (same,) = [b for b in bounds if b["bound"] == again["dequantization"]]
    assert again["bpd"] == same["bpd"] and same["draws"] == 1


def test_sample_is_seedable_and_one_grid_per_temperature(run_dir, tmp_path, capsys):
    out = tmp_path / "grid.png"
    for _ in range(2):
        assert (
            main(
                [
                    "sample",
                    str(run_dir),
                    "-t",
                    "0",
                    "1",
                    "-n",
                    "4",
                    "--seed",
                    "5",
                    "--out",
                    str(out),
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
    assert (
        capsys.readouterr().out.split()
        == [str(tmp_path / "grid_t0.png"), str(tmp_path / "grid_t1.png")] * 2
    )
    first = np.asarray(Image.open(tmp_path / "grid_t1.png"))
    assert (
        main(
            [
                "sample",
                str(run_dir),
                "-t",
                "1",
                "-n",
                "4",
                "--seed",
                "5",
                "--out",
                str(tmp_path / "again.png"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert np.array_equal(first, np.asarray(Image.open(tmp_path / "again.png")))
    assert main(["sample", str(run_dir), "--class", "3", "--device", "cpu"]) == 2
    assert "class-conditional" in capsys.readouterr().err


def test_class_conditional_training_and_sampling(tmp_path, capsys):
    run = tmp_path / "cond"
    assert train_cli(run, "--conditional", "--class-loss-weight", "0.1") == 0
    assert main(["sample", str(run), "--class", "3", "-n", "4", "--device", "cpu"]) == 0
    assert (run / "samples" / "sample_class3_t0.7.png").is_file()
    assert main(["sample", str(run), "--class", "10", "--device", "cpu"]) == 2
    assert "not in [0, 10)" in capsys.readouterr().err


def test_corrupted_checkpoint_is_a_clear_error(tmp_path, capsys):
    run = tmp_path / "run"
    assert train_cli(run) == 0
    weights = run / "checkpoints" / "step-00000002" / "model.safetensors"
    best = run / "checkpoints" / "best" / "model.safetensors"  # what eval reads by default
    for path in (weights, best):
        path.write_bytes(path.read_bytes()[:64])
    assert main(["eval", str(run), "--device", "cpu"]) == 2
    assert str(best) in capsys.readouterr().err
    assert train_cli(run, "--resume", "auto", "--max-steps", "4") == 2
    assert str(weights) in capsys.readouterr().err  # never a silent fresh start
    assert train_cli(run) == 2
    assert "--resume auto" in capsys.readouterr().err


def test_missing_dataset_folder_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert train_cli(tmp_path / "run", "--dataset", "mnist", "--data-root", str(missing)) == 2
    err = capsys.readouterr().err
    assert "error" in err and str(missing) in err and "Traceback" not in err


def test_image_folder_with_mixed_sizes_is_a_clear_error(tmp_path, capsys):
    folder = tmp_path / "pictures"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(folder / "b.png")
    assert train_cli(tmp_path / "run", "--dataset", f"folder:{folder}") == 2
    assert "differ in size" in capsys.readouterr().err


def test_help_lists_every_option_with_its_default(capsys):
    for command in ("train", "eval", "sample"):
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args([command, "--help"])
        assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in field_types():
        assert f"--{name.replace('_', '-')}" in text, name
    for flag in (
        "--preset",
        "--config",
        "--resume",
        "--split",
        "--json",
        "--draws",
        "--temperature",
        "--seed",
        "--out",
        "--class",
    ):
        assert flag in text
    assert "(default: [0.7])" in text and "(default: digits)" in text
    assert "(default: 1000)" in text  # --max-steps


def test_sample_grids_are_enlarged_with_nearest_neighbour(run_dir):
    with Image.open(run_dir / "samples/step-00000002_t0.7.png") as picture:
        grid = np.asarray(picture)
    assert grid.shape[1] >= 512  # a 2x2 grid of 8x8 digits is 19 pixels before enlarging
    factor = grid.shape[1] // 19
    assert grid.shape[1] == 19 * factor and grid.shape[0] > 19 * factor  # a title above
    blocks = grid[-19 * factor :].reshape(19, factor, 19, factor)
    assert (blocks == blocks[:, :1, :, :1]).all()  # each true pixel is a flat square
    assert (grid[: -19 * factor] < 128).any()  # the title, "step 2, T = 0.7", is written


def test_missing_dataset_error_names_the_flag(tmp_path, capsys):
    assert train_cli(tmp_path / "run", "--dataset", "mnist", "--data-root", str(tmp_path)) == 2
    assert "--download" in capsys.readouterr().err


def test_tensorboard_gets_sample_grids_hyperparameters_and_the_final_test_bpd(run_dir):
    """Scalars, the sample grids by temperature, and the HParams view with the results."""
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = accumulator.EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    assert "train_bpd" in tags["scalars"] and "val_bpd" in tags["scalars"]
    assert {f"samples/T={t}" for t in ("0", "0.5", "0.7", "1")} <= set(tags["images"])
    picture = events.Images("samples/T=0.7")[-1]
    assert picture.step == 2 and picture.width >= 256
    hparams = accumulator.EventAccumulator(str(run_dir / "tb" / "hparams"))
    hparams.Reload()
    result = json.loads((run_dir / "result.json").read_text())
    final = hparams.Scalars("hparam/test_bpd")[-1].value
    assert final == pytest.approx(result["test_bpd"], rel=1e-6)
    assert "_hparams_/session_start_info" in hparams.Tags()["tensors"] + list(
        hparams.summary_metadata
    )
