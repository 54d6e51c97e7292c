"""``pytest --device``: which devices it takes, the CPU draws moved to the device, and which
tests it keeps on the CPU (tests/devices.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import pytest
import torch

from devices import CPU_ONLY, TESTS, CpuDraws, cpu_only_reason, session_device

ROOT = TESTS.parent


def test_cpu_is_taken_and_other_devices_are_refused_by_name() -> None:
    assert session_device("cpu") == torch.device("cpu")
    for text in ("meta", "banana", "mps"):
        with pytest.raises(pytest.UsageError, match=f"--device {text}: the tests run on cpu"):
            session_device(text)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_is_refused_where_there_is_none() -> None:
    with pytest.raises(pytest.UsageError, match=r"--device cuda:1: this machine has 0 CUDA"):
        session_device("cuda:1")


@pytest.mark.cpu_only(reason="spawns pytest")
def test_pytest_exits_with_a_usage_error_for_meta() -> None:
    process = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--device", "meta", "tests/test_actnorm.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert process.returncode == pytest.ExitCode.USAGE_ERROR
    assert "--device meta: the tests run on cpu or cuda[:N]" in process.stderr


def test_a_draw_from_a_cpu_generator_is_taken_on_the_cpu_and_moved() -> None:
    """On the meta device the draw itself would ignore the generator; under CpuDraws it is
    taken from the generator, whose state therefore moves on exactly as on the CPU."""
    reference = torch.Generator().manual_seed(0)
    first, second = torch.randn(4, generator=reference), torch.randn(4, generator=reference)
    generator = torch.Generator().manual_seed(0)
    with torch.device("meta"), CpuDraws():
        moved = torch.randn(4, generator=generator, requires_grad=True)
        explicit = torch.rand(2, 3, generator=torch.Generator(), device="meta")
        plain = torch.randn(4)
    assert moved.device.type == explicit.device.type == plain.device.type == "meta"
    assert moved.requires_grad and moved.is_leaf and explicit.shape == (2, 3)
    assert torch.equal(torch.randn(4, generator=generator), second)
    with CpuDraws():  # same device: the call is left alone
        assert torch.equal(torch.randn(4, generator=torch.Generator().manual_seed(0)), first)


def _item(path: Path, name: str, marker: Optional[pytest.Mark] = None) -> SimpleNamespace:
    return SimpleNamespace(
        path=path,
        name=f"{name}[param]",
        originalname=name,
        get_closest_marker=lambda _: marker,
    )


def test_cpu_only_tests_are_found_by_module_test_marker_and_doctest() -> None:
    reason = cpu_only_reason(_item(TESTS / "test_faults.py", "test_anything"))
    assert reason == CPU_ONLY["test_faults.py"]
    test = (
        "test_dequantization.py::test_variational_run_checkpoints_resumes_and_reports_both_bounds"
    )
    assert (
        cpu_only_reason(_item(TESTS / "test_dequantization.py", test.split("::")[1]))
        == (CPU_ONLY[test])
    )
    assert cpu_only_reason(_item(TESTS / "test_dequantization.py", "test_other")) is None
    assert cpu_only_reason(_item(TESTS / "test_glow.py", "test_x")) is None
    marked = pytest.mark.cpu_only(reason="why").mark
    assert cpu_only_reason(_item(TESTS / "test_glow.py", "test_x", marked)) == "why"
    doctest = cpu_only_reason(_item(ROOT / "src" / "glowflow" / "flow.py", "glowflow.flow"))
    assert doctest is not None and "doctest" in doctest


@pytest.mark.parametrize("name", sorted(CPU_ONLY))
def test_every_cpu_only_name_is_a_test_here(name: str) -> None:
    module, _, test = name.partition("::")
    path = TESTS / module
    assert path.is_file(), f"CPU_ONLY names {module}, which tests/ does not have"
    if test:
        assert re.search(rf"^def {test}\(", path.read_text(), re.M), f"{path} has no {test}"
