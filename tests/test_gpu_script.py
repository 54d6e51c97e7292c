"""``benchmarks/gpu.sh --dry-run``: every part of the GPU run on the CPU with tiny sizes, into one
folder -- gpu.json (parts, figures, largest batch, syncs, test totals), gpu.log, junit.xml.

The dry run spawns about a dozen torch processes (some 45 s on two busy cores), so its checks
are slow tests: ``python -m pytest -m slow tests/test_gpu_script.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cpu_only(reason="runs benchmarks/gpu.sh --dry-run, itself a CPU run")

ROOT = Path(__file__).resolve().parents[1]
PARTS = ["pytest", "sync", "eager-fp32", "tf32", "peer-y0ast", "max-batch-8", "compile"]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("gpu")
    env = dict(
        os.environ,
        OUT=str(folder),
        PYTHON=sys.executable,
        GPU_PEER_Y0AST=str(folder / "no-such-checkout"),
    )
    process = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert process.returncode == 0, process.stderr[-2000:]
    return folder, json.loads((folder / "gpu.json").read_text())


@pytest.mark.slow
def test_dry_run_writes_the_three_files_and_every_part(dry_run: tuple[Path, dict]) -> None:
    folder, document = dry_run
    assert sorted(p.name for p in folder.iterdir()) == ["gpu.json", "gpu.log", "junit.xml"]
    assert document["dry_run"] is True and document["settings"]["device"] == "cpu"
    status = {part["name"]: part["status"] for part in document["parts"]}
    assert [name for name in status if name in PARTS] == PARTS
    assert {name: status[name] for name in PARTS if status[name] != "ok"} == {
        "peer-y0ast": "skipped",
        "compile": "skipped",
    }
    assert "no-such-checkout" in document["parts"][PARTS.index("peer-y0ast")]["note"]
    log = (folder / "gpu.log").read_text()
    assert "== eager-fp32" in log and "bench: round 1/1 glowflow tiny cpu fp32 none" in log


@pytest.mark.slow
def test_dry_run_gathers_figures_batch_syncs_and_tests(dry_run: tuple[Path, dict]) -> None:
    _, document = dry_run
    rows = {(row["part"], row["mode"], row["batch"]): row for row in document["figures"]}
    assert set(rows) == {("eager-fp32", "none", 4), ("tf32", "none", 4), ("max-batch-8", "none", 8)}
    assert rows[("tf32", "none", 4)]["tf32"] and not rows[("eager-fp32", "none", 4)]["tf32"]
    for row in rows.values():
        assert row["train_images_per_s"] > 0 and row["peak_memory_mb"] > 0
        assert 0 < row["fraction_of_limit"]["train"] < 1 and row["matmul_flops_per_s"]["fp32"] > 0
    assert document["max_batch"] == {
        "batch": 8,
        "limited_by": "cap",
        "probes": [{"batch": 8, "status": "ok"}],
    }
    # the CPU's unfused Adam reads each step's ok flag on the host: the counter sees it
    syncs = document["syncs"]
    assert syncs["zero_syncs"] is False
    assert all(run["host_read_ops"].get("_local_scalar_dense", 0) >= 1 for run in syncs["runs"])
    tests = document["tests"]
    assert tests["tests"] >= 1 and tests["failures"] == tests["errors"] == 0 and not tests["failed"]
    assert document["machine"]["torch"] and document["peer_ratios"] == []


def test_unknown_arguments_are_refused() -> None:
    process = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--gpu"], capture_output=True, text=True
    )
    assert process.returncode == 2 and "unknown argument '--gpu'" in process.stderr
