"""Other implementations timed beside glowflow: their runners and the per-round ratios.

A peer is another project's checkout (y0ast/Glow-PyTorch, rosinality/glow-pytorch for Glow;
apple/ml-tarflow for TarFlow), never a dependency and never copied here. Its runner, the
module ``glowflow.bench.runners.NAME`` (shipped with glowflow, so an installed copy has it
too), is called as
``python -m glowflow.bench.runners.NAME PEER_PATH SPEC_JSON``: it imports the peer's modules
from ``PEER_PATH``, builds the peer's model for the benchmark configuration in ``SPEC_JSON``
and times it with glowflow's own measuring code (:func:`glowflow.bench.measure.measure_tasks`),
so both sides are timed the same way. The benchmark alternates glowflow's and each peer's fresh
processes within a round; :func:`peer_ratios` divides glowflow's rates by the peer's of the
same round, so that whatever else the machine was doing then weighs on both.
"""

from __future__ import annotations

import pkgutil
import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError, MissingFileError
from . import runners

TASKS = ("train", "sample", "encode")


def known_peers() -> list[str]:
    """The peers with a runner: the modules of :mod:`glowflow.bench.runners` but ``common``.

    >>> known_peers()
    ['rosinality', 'tarflow', 'y0ast']
    """
    return sorted(m.name for m in pkgutil.iter_modules(runners.__path__) if m.name != "common")


def parse_peer(text: str) -> tuple[str, str]:
    """``"NAME=PATH"`` -> ``(NAME, PATH)``; :class:`~glowflow.errors.ConfigError` for anything
    else."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise ConfigError(f"--peer takes NAME=PATH (e.g. y0ast=/tmp/peers/y0ast), got {text!r}")
    return name, path


def peer_command(name: str, path: str) -> list[str]:
    """The command that runs peer ``name``'s runner on the checkout at ``path`` (the spec
    JSON is appended): :class:`~glowflow.errors.ConfigError` for a peer without a runner,
    :class:`~glowflow.errors.MissingFileError` when ``path`` is not a folder."""
    if name not in known_peers():
        raise ConfigError(f"no runner for peer {name!r}; runners: {known_peers()}")
    if not Path(path).is_dir():
        raise MissingFileError(f"peer {name!r}: {path} is not a folder (a checkout of the peer)")
    return [sys.executable, "-m", f"{runners.__name__}.{name}", str(Path(path).resolve())]


def peer_ratios(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """glowflow's rate over each peer's, per round, for every glowflow process (mode and
    precision) and task the peer also measured in that round: ``per_round`` (the ratio of the
    two processes' median rates) and their ``median``.

    Where glowflow's process profiled the task (``{task}_breakdown``), the entry also has
    ``convolution_bound``: per round, ``ratio / c`` with ``c`` the convolutions' share of
    glowflow's step -- the ratio glowflow would reach if everything but its convolutions took
    no time, so a target above it needs faster convolutions, not less overhead."""
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
                    share = entry.get(f"{task}_breakdown", {}).get("convolution", 0.0)
                    if share > 0:
                        ratios.setdefault(f"{task} bound", []).append(ratio / share)
    return [
        {
            "peer": peer,
            "config": config,
            "device": device,
            "mode": mode,
            "precision": precision,
            **{
                task: {
                    **_per_round(ratios[task]),
                    **(
                        {"convolution_bound": _per_round(ratios[f"{task} bound"])}
                        if f"{task} bound" in ratios
                        else {}
                    ),
                }
                for task in TASKS
                if task in ratios
            },
        }
        for (peer, config, device, mode, precision), ratios in groups.items()
    ]


def _per_round(values: list[float]) -> dict[str, Any]:
    """``{"per_round": values, "median": their median}``."""
    return {"per_round": values, "median": statistics.median(values)}
