"""``torchrun --nproc_per_node=2 -m glowflow train``: DDP with gloo on CPU, rank 0 writes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_cli_train import TINY

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.mark.slow
def test_torchrun_two_processes_two_steps(tmp_path):
    run_dir = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "glowflow",
        "train",
        "--run-dir",
        str(run_dir),
        "--max-steps",
        "2",
        "--threads",
        "1",
        *TINY,
    ]
    env = {
        **os.environ,
        "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "OMP_NUM_THREADS": "1",
    }
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert finished.stdout.count("test bits/dim") == 1  # only rank 0 reports
    result = json.loads((run_dir / "result.json").read_text())
    assert result["world_size"] == 2 and result["steps"] == 2 and result["num_images"] == 297
    assert (run_dir / "checkpoints" / "step-00000002" / "model.safetensors").is_file()
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 3


@pytest.mark.slow
def test_glowflow_launches_its_own_processes(tmp_path):
    """``glowflow train --nproc-per-node 2``: torchrun's launch inside glowflow, same run."""
    run_dir = tmp_path / "launched"
    command = [sys.executable, "-m", "glowflow", "train", "--nproc-per-node", "2"]
    command += ["--run-dir", str(run_dir), "--max-steps", "2", "--threads", "1", *TINY]
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert finished.stdout.count("test bits/dim") == 1
    assert json.loads((run_dir / "result.json").read_text())["world_size"] == 2


def test_a_launch_over_a_used_run_folder_is_one_line_before_any_process_starts(
    tmp_path, capsys, monkeypatch
):
    import glowflow.training.launch as launch
    from glowflow.cli import main

    (tmp_path / "used" / "checkpoints" / "step-00000003").mkdir(parents=True)
    monkeypatch.setattr(launch, "launch_local", lambda *a: pytest.fail("a process started"))
    code = main(["train", "--nproc-per-node", "2", "--run-dir", str(tmp_path / "used"), *TINY])
    assert code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "already holds checkpoints" in error
    assert main(["train", "--nproc-per-node", "0", *TINY]) == 2
    assert "--nproc-per-node must be >= 1" in capsys.readouterr().err


def test_under_torchrun_only_rank_0_prints_a_mistake(capsys, monkeypatch):
    from glowflow.cli import main

    monkeypatch.setenv("RANK", "1")
    assert main(["train", "--lr", "-1", *TINY]) == 2
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("RANK", "0")
    assert main(["train", "--lr", "-1", *TINY]) == 2
    assert "lr must be > 0" in capsys.readouterr().err
