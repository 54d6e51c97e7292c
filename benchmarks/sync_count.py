"""Host synchronizations inside glowflow's training step: ``python benchmarks/sync_count.py``.

Trains a small Glow a few steps with :func:`glowflow.training.step.training_step`, the trainer's
own step (mean bits/dim, backward, gradient clipping, Adam -- fused on CUDA), per memory mode
and precision, and counts what makes the host wait for the device in the counted steps (after
``--warmup`` uncounted ones, which create the optimizer's state):

* ``host_reads``: the aten operators whose result the host must see -- ``_local_scalar_dense``
  (``.item()``, ``bool()``), ``nonzero``, ``masked_select``, ``equal``, ``is_nonzero`` and
  copies from a device to the CPU -- counted on any device by a dispatch mode (which the
  backward pass's threads inherit). On the CPU they cost nothing, so a CPU run only shows the
  counter at work: the CPU's unfused Adam reads each step's ``ok`` flag, and its step
  counters, on the host;
* ``sync_warnings`` (CUDA): the warnings of ``torch.cuda.set_sync_debug_mode("warn")``,
  torch's own account of every synchronizing CUDA call.

``syncs_per_step`` is the larger of the two per counted step; the step must have none on CUDA.
Prints (or writes, ``--output``) one JSON document; exits 1 when a CUDA step synchronized.
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from glowflow import Flow, Glow, GlowConfig
from glowflow.dequantization import UniformDequantizer
from glowflow.memory import MEMORY_MODES
from glowflow.precision import PRECISIONS, make_grad_scaler
from glowflow.training.config import TrainConfig
from glowflow.training.step import Objective, make_optimizer, training_step

aten = torch.ops.aten
HOST_READS = frozenset(
    {
        aten._local_scalar_dense.default,
        aten.nonzero.default,
        aten.masked_select.default,
        aten.equal.default,
        aten.is_nonzero.default,
    }
)
"""Operators whose output the host reads, whatever the device."""


def _is_host_read(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> bool:
    if func in HOST_READS:
        return True
    if func is aten._to_copy.default:  # x.to("cpu"), x.cpu()
        target = kwargs.get("device")
        return target is not None and target.type == "cpu" and args[0].device.type != "cpu"
    if func is aten.copy_.default:  # cpu_tensor.copy_(device_tensor)
        return args[0].device.type == "cpu" and args[1].device.type != "cpu"
    return False


class HostReads(TorchDispatchMode):
    """Counts the host reads (:func:`_is_host_read`) per operator name while active."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(
        self,
        func: Any,
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: Optional[dict[str, Any]] = None,
    ) -> Any:
        kwargs = kwargs or {}
        if _is_host_read(func, args, kwargs):
            self.ops[str(func.overloadpacket.__name__)] += 1
        return func(*args, **kwargs)


def count_run(
    config: GlowConfig,
    device: torch.device,
    batch: int,
    precision: str,
    warmup: int,
    steps: int,
) -> dict[str, Any]:
    """Host reads (and, on CUDA, synchronization warnings) in ``steps`` training steps of a
    fresh ``config`` Glow after ``warmup`` uncounted ones, on a fixed uniform batch of
    ``batch`` 8-bit images: levels ``k`` and draws ``u``, ``x = (k + u) / 256 - 1/2``."""
    generator = torch.Generator().manual_seed(0)
    shape = (batch, *config.output_shape)
    levels = torch.randint(0, 256, shape, generator=generator).to(device)
    noise = torch.rand(shape, generator=generator).to(device)
    dequantizer = UniformDequantizer(n_bins=256)
    flow = Flow(Glow(config)).to(device)
    flow.initialize(dequantizer(levels, noise)[0])
    objective = Objective(flow, dequantizer, precision=precision)
    optimizer = make_optimizer("adam", list(flow.parameters()), 1e-4, device)
    scaler = make_grad_scaler(precision, device)
    max_grad_norm = TrainConfig().max_grad_norm

    def step() -> torch.Tensor:
        inputs = (levels, None, noise)
        return training_step(objective, optimizer, inputs, max_grad_norm, scaler=scaler).ok

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    counter = HostReads()
    cuda = device.type == "cuda"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if cuda:
            torch.cuda.set_sync_debug_mode("warn")
        try:
            with counter:
                oks = [step() for _ in range(steps)]
        finally:
            if cuda:
                torch.cuda.set_sync_debug_mode("default")
    messages = [str(w.message) for w in caught if "synchroniz" in str(w.message)]
    reads = sum(counter.ops.values())
    return {
        "mode": config.memory_mode,
        "precision": precision,
        "host_reads": reads,
        "host_read_ops": dict(counter.ops),
        "sync_warnings": len(messages) if cuda else None,
        "sync_messages": sorted(set(messages))[:5],
        "syncs_per_step": max(reads, len(messages)) / steps,
        "steps_taken": int(torch.stack(oks).sum()),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--device", default="cuda", help="device to train on")
    parser.add_argument(
        "--shape", nargs=3, type=int, default=(3, 32, 32), metavar=("C", "H", "W"), help="images"
    )
    parser.add_argument("--levels", type=int, default=3, help="Glow levels L")
    parser.add_argument("--steps-per-level", type=int, default=4, help="flow steps per level K")
    parser.add_argument("--width", type=int, default=64, help="coupling networks' hidden width")
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch")
    parser.add_argument("--warmup", type=int, default=2, help="uncounted steps first")
    parser.add_argument("--steps", type=int, default=3, help="counted steps")
    parser.add_argument(
        "--modes", nargs="+", default=["none", "invertible"], choices=MEMORY_MODES, help="modes"
    )
    parser.add_argument(
        "--precision", nargs="+", default=["fp32", "bf16"], choices=PRECISIONS, help="precisions"
    )
    parser.add_argument("--output", "-o", default=None, help="JSON file; none: print it")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("sync_count: --device cuda, but torch sees no CUDA device here")
    base = GlowConfig(
        output_shape=tuple(args.shape),
        num_glow_blocks=args.levels,
        num_steps_per_block=args.steps_per_level,
        hidden_channels=args.width,
        seed=0,
    )
    runs = [
        count_run(
            base.replace(memory_mode=mode),
            device,
            args.batch_size,
            precision,
            args.warmup,
            args.steps,
        )
        for mode in args.modes
        for precision in args.precision
    ]
    document = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "model": base.to_dict(),
        "batch_size": args.batch_size,
        "warmup_steps": args.warmup,
        "counted_steps": args.steps,
        "runs": runs,
        "zero_syncs": all(run["syncs_per_step"] == 0 for run in runs),
    }
    text = json.dumps(document, indent=2)
    if args.output is None:
        print(text)
    else:
        Path(args.output).write_text(text + "\n")
    for run in runs:
        print(
            f"sync_count: {device} {run['mode']} {run['precision']}: "
            f"{run['syncs_per_step']:g} syncs per step ({run['host_read_ops'] or 'no host reads'})"
        )
    return 1 if device.type == "cuda" and not document["zero_syncs"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
