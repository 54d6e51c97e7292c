"""Trainings run side by side for the benchmark scripts: ``glowflow train`` commands, started
``parallel`` at a time (each on its own core at the default one torch thread), a finished
run (a ``result.json`` in its folder) kept when asked to reuse it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Sequence


def glowflow_command(subcommand: str, *arguments: str) -> list[str]:
    """``python -m glowflow SUBCOMMAND ARGUMENTS...`` with this interpreter."""
    return [sys.executable, "-m", "glowflow", subcommand, *arguments]


def shown(command: Sequence[str]) -> str:
    """The command as a user types it (``glowflow ...``)."""
    return " ".join(["glowflow", *command[3:]])


def run_trainings(
    jobs: Sequence[tuple[Path, list[str]]], parallel: int, reuse: bool = False
) -> None:
    """Run each ``(run folder, command)`` of ``jobs``, ``parallel`` at a time; with ``reuse``,
    skip a job whose run folder already holds a ``result.json``. A failed job stops the
    script, naming its folder and exit status."""
    pending = [(folder, command) for folder, command in jobs]
    if reuse:
        pending = [(f, c) for f, c in pending if not (f / "result.json").is_file()]
    running: list[tuple[Path, subprocess.Popen]] = []
    while pending or running:
        while pending and len(running) < parallel:
            folder, command = pending.pop(0)
            print(shown(command), file=sys.stderr, flush=True)
            running.append((folder, subprocess.Popen(command)))
        folder, process = running.pop(0)
        if process.wait() != 0:
            raise SystemExit(f"training {folder} failed with exit status {process.returncode}")
