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
