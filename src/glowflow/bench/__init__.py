"""The performance benchmark: training, sampling and encoding speed, their fraction of the
machine's limit, and peak memory, side by side with other implementations.

``glowflow bench`` (:mod:`glowflow.cli.bench`) and :func:`run_benchmark` run it. One file per
concern:

* :mod:`~glowflow.bench.configs`: the named benchmark models (:data:`CONFIGS`,
  :func:`get_config`) and :func:`build_model`, the one place a model is built;
* :mod:`~glowflow.bench.settings`: how to measure (:class:`BenchSettings`), each setting with
  its command-line option;
* :mod:`~glowflow.bench.measure`: timing, memory and the limit for any model's :class:`Tasks`;
* :mod:`~glowflow.bench.process`: glowflow's own tasks, one measuring process
  (``python -m glowflow.bench SPEC_JSON``);
* :mod:`~glowflow.bench.run`: a fresh process per measurement, rounds, the summary;
* :mod:`~glowflow.bench.peers` and :mod:`~glowflow.bench.runners`: other implementations in
  alternating processes, and glowflow's rate over theirs;
* :mod:`~glowflow.bench.machine_limit`: the matmul rate per precision and counted FLOPs.

Each measuring process tunes the CPU ``malloc`` as its spec says (:mod:`glowflow.allocator`).
"""

from __future__ import annotations

from .configs import CONFIGS, build_model, get_config, spec_config
from .machine_limit import count_flops, fraction_of_limit, matmul_rate
from .measure import Result, Tasks, measure_tasks, setup_process
from .peers import known_peers, parse_peer, peer_command, peer_ratios
from .process import glowflow_tasks, measure
from .run import run_benchmark, run_in_subprocess, summarize
from .settings import BenchSettings

__all__ = [
    "CONFIGS",
    "BenchSettings",
    "Result",
    "Tasks",
    "build_model",
    "count_flops",
    "fraction_of_limit",
    "get_config",
    "glowflow_tasks",
    "known_peers",
    "matmul_rate",
    "measure",
    "measure_tasks",
    "parse_peer",
    "peer_command",
    "peer_ratios",
    "run_benchmark",
    "run_in_subprocess",
    "setup_process",
    "spec_config",
    "summarize",
]
