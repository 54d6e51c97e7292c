"""The device a test session runs on (``pytest --device cpu|cuda[:N]``) and the tests that stay on
the CPU.

``--device cuda`` makes CUDA torch's default device (:func:`torch.set_default_device`), so every
tensor and module a test creates without naming a device lands there and every exactness test
(round trips, log-dets against autograd Jacobians, precision) runs in CUDA arithmetic. Two
things make that work for tests written on the CPU:

* :class:`CpuDraws`: the tests seed their inputs with CPU generators
  (``torch.randn(shape, generator=torch.Generator().manual_seed(s))``), which CUDA refuses; a
  random draw from a generator on another device than the tensor's is taken on the generator's
  device and moved, so a test sees the same numbers on either device;
* :func:`cpu_only_reason`: the tests that cannot run there are skipped by name -- those in
  :data:`CPU_ONLY`, those marked ``@pytest.mark.cpu_only(reason=...)`` and the doctests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import pytest
import torch
from torch.overrides import TorchFunctionMode

TESTS = Path(__file__).resolve().parent
"""This folder: anything collected elsewhere is a doctest of ``src/glowflow``."""

_RUNS = "trains, evaluates or converts through the CLI on the CPU (runs.py: --device cpu)"
_FILES = "reads and writes files, with the tensors on the CPU"
CPU_ONLY: dict[str, str] = {
    "test_bench.py": "runs the benchmark's own CPU processes",
    "test_checkpoint.py": "checkpoint files load onto the CPU",
    "test_checkpoint_faults.py": "injects file faults and kills processes",
    "test_cli_train.py": _RUNS,
    "test_config.py": "spawns CLI processes",
    "test_convert.py": "converts peer checkpoint files on the CPU",
    "test_data.py": "datasets come from numpy files as CPU tensors",
    "test_data_hostile.py": "feeds hostile dataset files",
    "test_dequantization.py::test_variational_run_checkpoints_resumes_and_reports_both_bounds": _RUNS,
    "test_experiments.py::test_direction_files_round_trip": _FILES,
    "test_experiments_ablation.py": _RUNS,
    "test_experiments_cli.py": _RUNS,
    "test_faults.py": "injects file faults into CLI runs and spawns processes",
    "test_faults_slow.py": "injects file faults into CLI runs and spawns processes",
    "test_ood.py": "OOD sets come from the digits files as CPU tensors; scores are numpy",
    "test_ood_cli.py": _RUNS,
    "test_pretrained.py": "pretrained folders load onto the CPU",
    "test_readme.py": "runs the README's CPU commands",
    "test_run_lock.py": "locks run folders across processes",
    "test_run_log.py": _FILES,
    "test_selection.py": _FILES,
    "test_train.py": _RUNS,
    "test_train_config.py": _RUNS,
    "test_train_distributed.py": "spawns gloo processes on the CPU",
}
"""Tests that stay on the CPU under ``--device cuda``, by module (``test_x.py``) or by test
(``test_x.py::test_name``), with the reason the skip reports."""


def session_device(text: str) -> torch.device:
    """The device ``--device TEXT`` names: ``cpu``, or ``cuda``/``cuda:N`` when that device is
    here; :class:`pytest.UsageError` (pytest exits with status 4) for anything else."""
    try:
        device = torch.device(text)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise pytest.UsageError(
            f"--device {text}: the tests run on cpu or cuda[:N] (their checks need real arithmetic)"
        )
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise pytest.UsageError(f"--device {text}: this machine has {count} CUDA device(s)")
    return device


RANDOM_FACTORIES = frozenset({torch.rand, torch.randn, torch.randint, torch.randperm})


class CpuDraws(TorchFunctionMode):
    """``torch.rand``/``randn``/``randint``/``randperm`` with a ``generator`` on another device
    than the tensor's (the ``device`` argument, else the default device): the draw is taken on
    the generator's device and moved, ``requires_grad`` set after the move."""

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: Optional[dict[str, Any]] = None,
    ) -> Any:
        kwargs = dict(kwargs or {})
        generator = kwargs.get("generator")
        if func in RANDOM_FACTORIES and generator is not None:
            requested = kwargs.get("device")
            target = torch.empty(0).device if requested is None else torch.device(requested)
            if target.type != generator.device.type:
                requires_grad = kwargs.pop("requires_grad", False)
                kwargs["device"] = generator.device
                return func(*args, **kwargs).to(target).requires_grad_(requires_grad)
        return func(*args, **kwargs)


def use_device(device: torch.device) -> None:
    """Make ``device`` the default for the rest of the process, with :class:`CpuDraws`."""
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    torch.set_default_device(device)
    CpuDraws().__enter__()  # on top of the default device's mode, for the whole session


def cpu_only_reason(item: pytest.Item) -> Optional[str]:
    """Why ``item`` cannot run on another device than the CPU, or ``None`` when it can."""
    marker = item.get_closest_marker("cpu_only")
    if marker is not None:
        return str(marker.kwargs.get("reason", "marked cpu_only"))
    path = Path(item.path)
    if path.parent != TESTS:
        return "a doctest: its examples show CPU tensors"
    test = f"{path.name}::{getattr(item, 'originalname', item.name)}"
    return CPU_ONLY.get(test, CPU_ONLY.get(path.name))
