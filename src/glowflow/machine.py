"""What machine a figure was measured on: the CPU model, its cores, and the GPU in use."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Optional

import torch


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``'s, else the platform's word for it)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def machine_description(device: Optional[torch.device] = None) -> str:
    """``"<CPU model>, <N> cores"``, plus the GPU's name when ``device`` is a CUDA device."""
    text = f"{cpu_model()}, {os.cpu_count()} cores"
    if device is not None and device.type == "cuda":
        text += f", {torch.cuda.get_device_name(device)}"
    return text
