"""Running the benchmark: one fresh process per measurement, alternating within each round,
and the summary over rounds.

Every measurement runs in a fresh Python process (``python -m glowflow.bench SPEC_JSON``, or a
peer's runner, see :mod:`glowflow.bench.peers`), so its peak memory is that of one task alone
(:mod:`glowflow.bench.measure`). A spec is the JSON of the
:class:`~glowflow.bench.settings.BenchSettings` plus ``mode``, ``device``, ``precision``,
``generate`` (also sample and encode) and ``config`` (the model's configuration,
:mod:`glowflow.bench.configs`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import torch

from ..config_base import FlowConfig
from ..errors import ModelFileError
from ..memory import check_memory_mode
from ..precision import check_precision
from .configs import spec_family
from .measure import Result
from .peers import peer_command, peer_ratios
from .settings import BenchSettings


def machine_info(threads: int) -> Result:
    """CPU model, core counts, threads used, platform, torch version and CUDA devices."""
    model, cores = platform.processor() or "unknown", set()
    try:
        physical = "0"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name":
                model = value
            elif key == "physical id":
                physical = value
            elif key == "core id":
                cores.add((physical, value))
    except OSError:
        pass
    cuda = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "cpu_model": model,
        "physical_cores": len(cores) or None,
        "logical_cpus": os.cpu_count(),
        "threads": threads,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "mkldnn": torch.backends.mkldnn.is_available(),
        "cuda_devices": cuda,
    }


def _machine_busy_seconds() -> Optional[float]:
    """CPU seconds every process (and the hypervisor's steal) used since boot; Linux only."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_in_subprocess(
    spec: Result, command: Sequence[str] = (sys.executable, "-m", "glowflow.bench")
) -> Result:
    """Run :func:`glowflow.bench.process.measure` (or another ``command`` that takes the JSON
    spec as its last argument and prints a JSON result line: a peer's runner) in a fresh
    interpreter and return
    its result, plus ``other_load``: the CPU time other processes took meanwhile, as a fraction
    of the machine (0: the benchmark had it alone; 0.5 on 2 cores: one core's worth was busy
    elsewhere)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]))
    home = str(Path(__file__).resolve().parents[2])  # holds this glowflow: the child imports it
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [home, env.get("PYTHONPATH")]))
    busy, mine, start = _machine_busy_seconds(), _children_seconds(), time.perf_counter()
    process = subprocess.run(
        [*command, json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
    )
    if process.returncode != 0:
        raise ModelFileError(f"benchmark task failed: {spec}\n{process.stderr[-4000:]}")
    result = json.loads(process.stdout.strip().splitlines()[-1])
    end_busy = _machine_busy_seconds()
    if busy is not None and end_busy is not None:
        others = (end_busy - busy) - (_children_seconds() - mine)
        capacity = (time.perf_counter() - start) * (os.cpu_count() or 1)
        result["other_load"] = max(0.0, others) / capacity
    return result


RATES = ("train_images_per_s", "sample_images_per_s", "encode_images_per_s")
BREAKDOWNS = ("train_breakdown", "sample_breakdown", "encode_breakdown")
WORST_CASE = (
    "peak_rss_mb",
    "training_rss_mb",
    "activation_rss_mb",
    "peak_allocated_mb",
    "other_load",
    "reconstruction_max_abs_error",
)
GROUP = ("implementation", "config", "device", "mode", "precision")
"""What one summary line holds fixed."""


def summarize(results: Sequence[Result]) -> list[Result]:
    """One entry per (implementation, config, device, mode, precision) over all rounds: each
    speed is the median (and best) of every timed run, with each round's median, and its
    fraction of the machine limit and time breakdown (medians over rounds); memory, ``other_load`` and the
    reconstruction error are the largest seen."""
    groups: dict[tuple[str, ...], list[Result]] = {}
    for entry in results:
        groups.setdefault(tuple(entry[key] for key in GROUP), []).append(entry)
    summary = []
    for key_values, entries in groups.items():
        line: Result = dict(zip(GROUP, key_values))
        fractions = [entry["fraction_of_limit"] for entry in entries]
        line["fraction_of_limit"] = {
            task: statistics.median(f[task] for f in fractions) for task in fractions[0]
        }
        for key in RATES:
            parts = [entry[key] for entry in entries if key in entry]
            if parts:
                runs = [rate for part in parts for rate in part["runs"]]
                line[key] = {
                    "median": statistics.median(runs),
                    "best": max(runs),
                    "round_medians": [part["median"] for part in parts],
                }
        for key in BREAKDOWNS:
            parts = [entry[key] for entry in entries if key in entry]
            if parts:
                line[key] = {cls: statistics.median(p[cls] for p in parts) for cls in parts[0]}
        for key in WORST_CASE:
            values = [entry[key] for entry in entries if entry.get(key) is not None]
            if values:
                line[key] = max(values)
        summary.append(line)
    return summary


def run_benchmark(
    configs: Mapping[str, FlowConfig],
    modes: Sequence[str],
    devices: Sequence[str],
    settings: BenchSettings,
    log: Callable[[str], None] = lambda line: None,
    precisions: Sequence[str] = ("fp32",),
    peers: Mapping[str, str] = {},
) -> Result:
    """One fresh process per (round, config, device, precision, mode), then one per peer
    (``peers``: name -> checkout, run through :mod:`glowflow.bench.runners` ``.NAME`` in fp32
    and plain autograd), all alternating within each round; the first mode's process of each precision
    also samples and encodes.

    Returns the JSON document: machine, settings, configs, the summary, the per-round ratios
    of glowflow to each peer (:func:`glowflow.bench.peers.peer_ratios`) and every process's result.
    """
    for mode in modes:
        check_memory_mode(mode)
    for precision in precisions:
        check_precision(precision)
    commands = {name: peer_command(name, path) for name, path in peers.items()}
    results = []
    for round_index in range(settings.rounds):
        for name in configs:
            for device in devices:
                jobs = [
                    ("glowflow", precision, mode, index == 0, None)
                    for precision in precisions
                    for index, mode in enumerate(modes)
                ]
                jobs += [
                    (peer, "fp32", "none", True, command) for peer, command in commands.items()
                ]
                for implementation, precision, mode, generate, command in jobs:
                    spec = dict(
                        dataclasses.asdict(settings),
                        mode=mode,
                        device=device,
                        precision=precision,
                        generate=generate,
                        config=configs[name].to_dict(),
                        family=spec_family(configs[name]),
                    )
                    log(
                        f"round {round_index + 1}/{settings.rounds} {implementation} {name} "
                        f"{device} {precision} {mode}"
                    )
                    entry = {
                        "implementation": implementation,
                        "config": name,
                        "device": device,
                        "mode": mode,
                        "precision": precision,
                        "round": round_index,
                    }
                    run = (
                        run_in_subprocess(spec)
                        if command is None
                        else run_in_subprocess(spec, command)
                    )
                    results.append({**entry, **run})
    return {
        "machine": machine_info(settings.threads),
        "settings": dataclasses.asdict(settings),
        "configs": {name: config.to_dict() for name, config in configs.items()},
        "peers": {
            name: {"path": str(path), "command": commands[name]} for name, path in peers.items()
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "summary": summarize(results),
        "peer_ratios": peer_ratios(results),
        "results": results,
    }
