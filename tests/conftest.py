"""Shared pytest setup: the test helpers in this folder are importable (``checks``, ``runs``,
``devices``), and ``--device cpu|cuda[:N]`` picks the device the tests run on (see
:mod:`devices`; ``cpu`` by default)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(min(2, torch.get_num_threads()))

from devices import cpu_only_reason, session_device, use_device  # noqa: E402

DEVICE = pytest.StashKey[torch.device]()
"""Where the session's device is kept on the pytest config."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device",
        default="cpu",
        help="device the tests run on: cpu (default) or cuda[:N]; tests that cannot run on "
        "CUDA (CLI processes, files, doctests) are skipped there, by name (tests/devices.py)",
    )


def pytest_configure(config: pytest.Config) -> None:
    device = session_device(config.getoption("--device"))
    config.stash[DEVICE] = device
    if device.type != "cpu":
        use_device(device)


def pytest_report_header(config: pytest.Config) -> str:
    device = config.stash[DEVICE]
    if device.type != "cuda":
        return f"device: {device}"
    return (
        f"device: {device} ({torch.cuda.get_device_name(device)}; torch's TF32 defaults: "
        f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}, "
        f"matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32})"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    device = config.stash[DEVICE]
    if device.type == "cpu":
        return
    for item in items:
        reason = cpu_only_reason(item)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"CPU only under --device {device}: {reason}"))
