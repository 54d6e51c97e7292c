"""Shared pytest setup: the test helpers in this folder are importable as ``checks``."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(min(2, torch.get_num_threads()))
