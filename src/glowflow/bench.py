"""The performance benchmark: training, sampling and encoding speed, their fraction of the
machine's limit, and peak memory, side by side with other implementations.

Every measurement runs in a fresh Python process (``python -m glowflow.bench SPEC``, or a peer's
runner, see :mod:`glowflow.peers`), so peak memory is that of one task alone: on CPU the
process's peak resident set size (``ru_maxrss``, which includes the PyTorch runtime itself), on
CUDA ``torch.cuda.max_memory_allocated``. Speeds are images per second: ``warmup`` untimed
calls, then ``repeats`` timed runs of ``iterations`` calls each; the figure is the median run
(the best run is kept too, since a shared machine only ever slows a run down). Any model is
measured by the same code through :class:`Tasks`:

* training: the trainer's own step (:func:`glowflow.training.step.training_step`: mean
  bits/dim, backward, gradient clipping, Adam -- fused on CUDA), on a fixed uniform batch;
* sampling: :meth:`Flow.sample` of a batch, eval mode, under ``torch.inference_mode``;
* encoding: :meth:`Flow.encode` of a batch, likewise;
* the limit: the FLOPs per image of one training step and one sampling call, counted by
  ``FlopCounterMode``, and the matmul rate of each precision used
  (:mod:`glowflow.machine_limit`); each throughput is reported as a fraction of
  ``rate / FLOPs``.

Options: ``precision`` runs the networks in bf16 or fp16 (:mod:`glowflow.precision`; the
flow's own arithmetic stays fp32, fp16 training scales its loss); ``allocator="retain"`` calls
:func:`glowflow.memory.retain_freed_memory` in each process (the CPU heap is kept for reuse;
``"default"`` leaves glibc's malloc alone); ``channels_last`` stores the model's conv weights
and the batch channels-last; ``compile`` wraps the training objective (forward and backward) in
``torch.compile`` (sampling and encoding stay eager: the 1x1 convolutions' weight cache is
Python state that would make dynamo recompile per layer); ``tf32`` (CUDA) lets training matmuls
and convolutions use TF32 -- sampling and encoding always run without it, so no reconstruction
or bits/dim figure depends on it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Mapping, Optional, Sequence

import torch
from torch import nn

from .config import GlowConfig
from .dequantization import UniformDequantizer
from .flow import Flow
from .glow import Glow
from .machine_limit import count_flops, fraction_of_limit, matmul_rate
from .memory import check_memory_mode, retain_freed_memory
from .peers import peer_command, peer_ratios
from .precision import DTYPES, check_precision, make_grad_scaler, network_precision
from .training.config import TrainConfig, resolve_config
from .training.step import Objective, make_optimizer, training_step

Result = dict[str, Any]
ALLOCATORS = ("retain", "default")  # retain: glowflow.memory.retain_freed_memory() per process


def _preset_model(preset: str, shape: tuple[int, int, int]) -> GlowConfig:
    """The model of a ``glowflow train`` preset, on images of ``shape``."""
    return resolve_config(preset).model.replace(output_shape=shape, seed=0)


CONFIGS: dict[str, GlowConfig] = {
    # the models of the `glowflow train` presets of the same names (8x8 digits; the paper's
    # CIFAR-10 model), read from the presets themselves
    "digits": _preset_model("digits", (1, 8, 8)),
    "cifar10": _preset_model("cifar10", (3, 32, 32)),
    "cifar10-small": GlowConfig(
        output_shape=(3, 32, 32),
        num_glow_blocks=3,
        num_steps_per_block=8,
        hidden_channels=128,
        coupling="affine",
        permutation="invconv_lu",
        seed=0,
    ),
    "tiny": GlowConfig(
        output_shape=(1, 8, 8), num_glow_blocks=2, num_steps_per_block=2, hidden_channels=8, seed=0
    ),  # smoke tests
}
"""The named benchmark models, as :class:`~glowflow.GlowConfig` s."""


def get_config(name: str) -> GlowConfig:
    """A configuration by name: one of :data:`CONFIGS`, optionally ``@K<steps>`` for another
    depth (``"cifar10-small@K32"``)."""
    base, _, depth = name.partition("@K")
    if base not in CONFIGS:
        raise ValueError(
            f"unknown benchmark config {name!r}; choose from {tuple(CONFIGS)}, "
            "optionally with @K<steps per level>"
        )
    if not depth:
        return CONFIGS[base]
    if not depth.isdigit() or int(depth) < 1:
        raise ValueError(f"config {name!r}: the depth after @K must be a positive integer")
    return CONFIGS[base].replace(num_steps_per_block=int(depth))


# ------------------------------------------------------------------------------ measuring
def _rates(
    fn: Callable[[], object],
    batch: int,
    repeats: int,
    iterations: int,
    sync: Callable[[], None],
) -> list[float]:
    """Images/s of ``repeats`` timed runs of ``iterations`` calls (warm ``fn`` up first)."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iterations):
            fn()
        sync()
        rates.append(batch * iterations / (time.perf_counter() - start))
    return rates


def _warm_up(fn: Callable[[], object], calls: int, sync: Callable[[], None]) -> None:
    for _ in range(calls):
        fn()
    sync()


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _summary(rates: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(rates), "best": max(rates), "runs": rates}


def _current_rss_mb() -> Optional[float]:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def setup_process(
    spec: Result,
) -> tuple[GlowConfig, torch.device, torch.Tensor, Callable[[], None]]:
    """A measuring process's set-up from its spec: the allocator, the threads, the config (in
    the spec's memory mode), the device, a fixed uniform batch ``x`` in ``[-1/2, 1/2)`` and the
    device sync."""
    if spec["allocator"] == "retain":
        retain_freed_memory()
    torch.set_num_threads(spec["threads"])
    config = GlowConfig.from_dict(spec["config"]).replace(memory_mode=spec["mode"])
    device = torch.device(spec["device"])
    generator = torch.Generator().manual_seed(0)
    assert config.output_shape is not None
    x = (torch.rand(spec["batch"], *config.output_shape, generator=generator) - 0.5).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.backends.cudnn.benchmark = True
    return config, device, x, sync


def _allow_tf32(enabled: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


@dataclass
class Tasks:
    """What the benchmark times for one model on one batch: any implementation (glowflow's,
    or a peer's through its runner in ``benchmarks/peers/``) is measured by the same code.

    Attributes:
        model: the module trained (its parameters size the optimizer state).
        train_step: one optimizer step on the batch (forward, backward, clipping, Adam);
            returns the loss as a device tensor.
        sample: draws a batch of samples (run in eval mode under ``inference_mode``).
        encode: encodes the batch (likewise).
        round_trip_error: ``max |decode(encode(x)) - x|`` (``None``: not measured).
        plain_autograd: a context in which ``train_step`` runs with plain autograd, where the
            FLOPs are counted: the model's own, without a memory mode's recomputation.
    """

    model: nn.Module
    train_step: Callable[[], torch.Tensor]
    sample: Callable[[], object]
    encode: Callable[[], object]
    round_trip_error: Optional[Callable[[], float]] = None
    plain_autograd: Callable[[], ContextManager[object]] = contextlib.nullcontext


def measure_training(
    spec: Result, tasks: Tasks, batch: int, device: torch.device, sync: Callable[[], None]
) -> Result:
    """Training images/s, FLOPs per image and peak memory (of this process so far).

    On CPU: ``peak_rss_mb`` (the whole process), ``training_rss_mb`` (its growth from just
    before the first step) and ``activation_rss_mb`` (that growth less ``state_mb``, the
    gradients and Adam moments, 3 x the parameters' bytes); ``page_faults_per_step``, minor
    page faults per timed step, shows allocator churn (see ``allocator``).
    ``train_flops_per_image`` is counted on one more step, after the timing, with plain
    autograd (the model's FLOPs, not a memory mode's recomputation).
    """
    parameters = list(tasks.model.parameters())
    state = 3 * sum(p.numel() * p.element_size() for p in parameters) / 2**20
    losses: list[torch.Tensor] = []

    def step() -> None:
        losses.append(tasks.train_step())

    baseline = _current_rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _warm_up(step, spec["warmup"], sync)
    faults = _minor_faults()
    rates = _rates(step, batch, spec["repeats"], spec["iterations"], sync)
    faults = (_minor_faults() - faults) / (spec["repeats"] * spec["iterations"])
    memory: Result
    if device.type == "cuda":
        memory = {"peak_allocated_mb": torch.cuda.max_memory_allocated(device) / 2**20}
    else:
        peak = _peak_rss_mb()
        training = None if baseline is None else peak - baseline
        memory = {
            "peak_rss_mb": peak,
            "baseline_rss_mb": baseline,
            "training_rss_mb": training,
            "activation_rss_mb": None if training is None else training - state,
            "page_faults_per_step": faults,
        }
    finite = bool(torch.isfinite(torch.stack(losses)).all())
    with tasks.plain_autograd():
        flops = count_flops(tasks.train_step) / batch
    return {
        "train_images_per_s": _summary(rates),
        **memory,
        "state_mb": state,
        "parameters": sum(p.numel() for p in parameters),
        "loss_finite": finite,
        "train_flops_per_image": flops,
    }


def measure_generation(spec: Result, tasks: Tasks, batch: int, sync: Callable[[], None]) -> Result:
    """Sampling and encoding images/s (eval mode, ``inference_mode``), the sampling FLOPs per
    image and the round-trip error."""
    _allow_tf32(False)
    tasks.model.eval()
    result: Result = {}
    with torch.inference_mode():
        for name, fn in {"sample": tasks.sample, "encode": tasks.encode}.items():
            _warm_up(fn, spec["warmup"], sync)
            rates = _rates(fn, batch, spec["repeats"], spec["iterations"], sync)
            result[f"{name}_images_per_s"] = _summary(rates)
        result["sample_flops_per_image"] = count_flops(tasks.sample) / batch
        if tasks.round_trip_error is not None:
            result["reconstruction_max_abs_error"] = tasks.round_trip_error()
    return result


def measure_limits(spec: Result, result: Result, device: torch.device) -> Result:
    """The matmul rate (FLOP/s) of fp32 and of ``spec["precision"]`` on ``device`` (and of TF32
    when ``spec["tf32"]`` on CUDA), and each throughput in ``result`` as a fraction of
    ``rate / flops_per_image``: training against the rate it ran at (TF32 with ``tf32``),
    sampling and encoding (counted as sampling's FLOPs, its mirror image) against the
    precision's, since they never use TF32."""
    rates = {
        name: matmul_rate(DTYPES[name], device)
        for name in dict.fromkeys(("fp32", spec["precision"]))
    }
    train_rate = rates[spec["precision"]]
    if spec["tf32"] and device.type == "cuda":
        _allow_tf32(True)
        rates["tf32"] = matmul_rate(torch.float32, device)
        _allow_tf32(False)
        if spec["precision"] == "fp32":
            train_rate = rates["tf32"]
    fractions = {
        "train": fraction_of_limit(
            result["train_images_per_s"]["median"], result["train_flops_per_image"], train_rate
        )
    }
    for task in ("sample", "encode"):
        if f"{task}_images_per_s" in result:
            fractions[task] = fraction_of_limit(
                result[f"{task}_images_per_s"]["median"],
                result["sample_flops_per_image"],
                rates[spec["precision"]],
            )
    return {"matmul_flops_per_s": rates, "fraction_of_limit": fractions}


def measure_tasks(spec: Result, tasks: Tasks, x: torch.Tensor, sync: Callable[[], None]) -> Result:
    """Everything for one process: training, then (``spec["generate"]``) sampling and encoding
    with the trained model (after peak training memory has been read), then the limits."""
    batch = x.shape[0]
    result = measure_training(spec, tasks, batch, x.device, sync)
    if spec["generate"]:
        result.update(measure_generation(spec, tasks, batch, sync))
    return {**result, **measure_limits(spec, result, x.device)}


def glowflow_tasks(spec: Result, flow: Flow, x: torch.Tensor) -> Tasks:
    """glowflow's tasks: the trainer's own step
    (:func:`glowflow.training.step.training_step`, Adam -- fused on CUDA --, the networks in
    ``spec["precision"]``, loss scaling in fp16, ``torch.compile`` with ``spec["compile"]``)
    on a fixed uniform batch; :meth:`Flow.sample` and :meth:`Flow.encode` in that precision."""
    device = x.device
    _allow_tf32(spec["tf32"])
    optimizer = make_optimizer("adam", list(flow.parameters()), 1e-4, device)
    objective = Objective(flow, UniformDequantizer(n_bins=256), precision=spec["precision"])
    scaler = make_grad_scaler(spec["precision"], device)
    # the batch as 8-bit levels and its dequantization draws: x = (k + u) / 256 - 1/2
    levels = torch.floor((x + 0.5) * 256).clamp(0, 255).long()
    inputs = (levels, None, (x + 0.5) * 256 - levels)
    model = torch.compile(objective) if spec["compile"] else objective
    max_grad_norm = TrainConfig().max_grad_norm

    def train_step() -> torch.Tensor:
        return training_step(model, optimizer, inputs, max_grad_norm, scaler=scaler).bpd

    def in_precision(fn: Callable[[], Any]) -> Callable[[], Any]:
        def call() -> Any:
            with network_precision(spec["precision"], device):
                return fn()

        return call

    def round_trip() -> float:
        return (flow.decode(flow.encode(x)) - x).abs().max().item()

    @contextlib.contextmanager
    def plain_autograd() -> Iterator[None]:
        glow, mode = flow.bijector, flow.bijector.memory_mode
        glow.memory_mode = "none"
        try:
            yield
        finally:
            glow.memory_mode = mode

    return Tasks(
        flow,
        train_step,
        in_precision(lambda: flow.sample(x.shape[0])),
        in_precision(lambda: flow.encode(x)),
        in_precision(round_trip),
        plain_autograd,
    )


def measure(spec: Result) -> Result:
    """One glowflow task, in this (fresh) process: train in ``spec["mode"]`` and
    ``spec["precision"]``, then sample and encode with the same model if ``spec["generate"]``."""
    config, device, x, sync = setup_process(spec)
    flow = Flow(Glow(config)).to(device)
    flow.initialize(x)
    if spec["channels_last"]:
        flow.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    fused = device.type == "cuda"
    return {
        **measure_tasks(spec, glowflow_tasks(spec, flow, x), x, sync),
        "optimizer": f"Adam(fused={fused})",
    }


# ------------------------------------------------------------------------------ orchestrating
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
    """Run :func:`measure` (or another ``command`` that takes the JSON spec as its last
    argument and prints a JSON result line: a peer's runner) in a fresh interpreter and return
    its result, plus ``other_load``: the CPU time other processes took meanwhile, as a fraction
    of the machine (0: the benchmark had it alone; 0.5 on 2 cores: one core's worth was busy
    elsewhere)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]))
    source = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    busy, mine, start = _machine_busy_seconds(), _children_seconds(), time.perf_counter()
    process = subprocess.run(
        [*command, json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
    )
    if process.returncode != 0:
        raise RuntimeError(f"benchmark task failed: {spec}\n{process.stderr[-4000:]}")
    result = json.loads(process.stdout.strip().splitlines()[-1])
    end_busy = _machine_busy_seconds()
    if busy is not None and end_busy is not None:
        others = (end_busy - busy) - (_children_seconds() - mine)
        capacity = (time.perf_counter() - start) * (os.cpu_count() or 1)
        result["other_load"] = max(0.0, others) / capacity
    return result


@dataclass(frozen=True)
class BenchSettings:
    """How to measure: batch size, CPU threads, timing, and the speed options.

    ``rounds`` repeats the whole set of processes, interleaved, so that the modes share
    whatever else the machine is doing; the summary pools every timed run.
    """

    batch: int = 16
    threads: int = 2
    warmup: int = 2
    repeats: int = 5
    iterations: int = 3
    rounds: int = 1
    compile: bool = False
    tf32: bool = False
    allocator: str = "retain"
    channels_last: bool = False

    def __post_init__(self) -> None:
        counts = (self.batch, self.threads, self.repeats, self.iterations, self.rounds)
        if min(counts) < 1 or self.warmup < 0:
            raise ValueError(
                "batch, threads, repeats, iterations and rounds must be >= 1, warmup >= 0"
            )
        if self.allocator not in ALLOCATORS:
            raise ValueError(f"allocator must be one of {ALLOCATORS}, got {self.allocator!r}")


RATES = ("train_images_per_s", "sample_images_per_s", "encode_images_per_s")
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
    fraction of the machine limit (median over rounds); memory, ``other_load`` and the
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
        for key in WORST_CASE:
            values = [entry[key] for entry in entries if entry.get(key) is not None]
            if values:
                line[key] = max(values)
        summary.append(line)
    return summary


def run_benchmark(
    configs: Mapping[str, GlowConfig],
    modes: Sequence[str],
    devices: Sequence[str],
    settings: BenchSettings,
    log: Callable[[str], None] = lambda line: None,
    precisions: Sequence[str] = ("fp32",),
    peers: Mapping[str, str] = {},
) -> Result:
    """One fresh process per (round, config, device, precision, mode), then one per peer
    (``peers``: name -> checkout, run through ``benchmarks/peers/NAME.py`` in fp32 and plain
    autograd), all alternating within each round; the first mode's process of each precision
    also samples and encodes.

    Returns the JSON document: machine, settings, configs, the summary, the per-round ratios
    of glowflow to each peer (:func:`glowflow.peers.peer_ratios`) and every process's result.
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


def _child_main(argv: Sequence[str]) -> None:
    spec = json.loads(argv[0])
    print(json.dumps(measure(spec)))


if __name__ == "__main__":
    _child_main(sys.argv[1:])
