"""Other Glow implementations timed beside glowflow: their runners and the per-round ratios.

A peer is another project's checkout (y0ast/Glow-PyTorch, rosinality/glow-pytorch), never a
dependency and never copied here. Its runner, ``benchmarks/peers/NAME.py`` in this
repository, is called as ``python RUNNER PEER_PATH SPEC_JSON``: it imports the peer's modules
from ``PEER_PATH``, builds the peer's model for the benchmark configuration in ``SPEC_JSON``
and times it with glowflow's own measuring code (:func:`glowflow.bench.measure_tasks`), so
both sides are timed the same way. The benchmark alternates glowflow's and each peer's fresh
processes within a round; :func:`peer_ratios` divides glowflow's rates by the peer's of the
same round, so that whatever else the machine was doing then weighs on both.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

RUNNERS = Path(__file__).resolve().parents[2] / "benchmarks" / "peers"
"""Where the peer runners live (a source checkout of glowflow)."""

TASKS = ("train", "sample", "encode")


def parse_peer(text: str) -> tuple[str, str]:
    """``"NAME=PATH"`` -> ``(NAME, PATH)``; ``ValueError`` for anything else."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise ValueError(f"--peer takes NAME=PATH (e.g. y0ast=/tmp/peers/y0ast), got {text!r}")
    return name, path


def peer_command(name: str, path: str) -> list[str]:
    """The command that runs peer ``name``'s runner on the checkout at ``path`` (the spec
    JSON is appended); ``ValueError`` when either is missing."""
    runner = RUNNERS / f"{name}.py"
    if not runner.is_file():
        known = sorted(p.stem for p in RUNNERS.glob("*.py")) if RUNNERS.is_dir() else []
        raise ValueError(
            f"no runner for peer {name!r} ({runner}); runners: {known or 'none'} "
            "(they live in a source checkout of glowflow)"
        )
    if not Path(path).is_dir():
        raise ValueError(f"peer {name!r}: {path} is not a folder (a checkout of the peer)")
    return [sys.executable, str(runner), str(Path(path).resolve())]


def peer_ratios(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """glowflow's rate over each peer's, per round, for every glowflow process (mode and
    precision) and task the peer also measured in that round: ``per_round`` (the ratio of the
    two processes' median rates) and their ``median``."""
    own = [r for r in results if r["implementation"] == "glowflow"]
    others = [r for r in results if r["implementation"] != "glowflow"]
    groups: dict[tuple[str, ...], dict[str, list[float]]] = {}
    for peer in others:
        for entry in own:
            if (entry["round"], entry["config"], entry["device"]) != (
                peer["round"],
                peer["config"],
                peer["device"],
            ):
                continue
            key = (
                peer["implementation"],
                entry["config"],
                entry["device"],
                entry["mode"],
                entry["precision"],
            )
            ratios = groups.setdefault(key, {})
            for task in TASKS:
                rate = f"{task}_images_per_s"
                if rate in entry and rate in peer:
                    ratio = entry[rate]["median"] / peer[rate]["median"]
                    ratios.setdefault(task, []).append(ratio)
    return [
        {
            "peer": peer,
            "config": config,
            "device": device,
            "mode": mode,
            "precision": precision,
            **{
                task: {"per_round": values, "median": statistics.median(values)}
                for task, values in ratios.items()
            },
        }
        for (peer, config, device, mode, precision), ratios in groups.items()
    ]
