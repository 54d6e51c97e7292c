"""The Glow paper's Figure 3: permutation {reverse, shuffle, 1x1 conv} x coupling {additive,
affine}, trained with the same budget and seeds, compared by test bits/dim."""

from __future__ import annotations

import csv
import dataclasses
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..errors import ConfigError
from ..training.config import TrainConfig
from ..training.run_log import read_metrics
from ..training.trainer import TrainResult, train

PERMUTATIONS = ("reverse", "shuffle", "invconv")
"""The paper's order, worst to best: 1x1 conv < shuffle < reverse in bits/dim."""
COUPLINGS = ("additive", "affine")
"""The paper's order, worst to best: affine < additive in bits/dim."""

Trainer = Callable[..., TrainResult]


@dataclass(frozen=True)
class AblationRun:
    """One trained variant and seed.

    Attributes:
        permutation, coupling, seed: the variant.
        test_bpd: test bits/dim of the run's best checkpoint (chosen on validation).
        curve: ``(step, validation bits/dim)`` at every evaluation.
        wall_time_s: training wall time.
        run_dir: the run folder.
    """

    permutation: str
    coupling: str
    seed: int
    test_bpd: float
    curve: list[tuple[float, float]]
    wall_time_s: float
    run_dir: Path


@dataclass(frozen=True)
class VariantSummary:
    """Final test bits/dim of one variant over its seeds (``std`` is 0 for a single seed)."""

    permutation: str
    coupling: str
    mean: float
    std: float
    values: tuple[float, ...]

    @property
    def name(self) -> str:
        return f"{self.permutation}+{self.coupling}"


def variant_configs(base: TrainConfig, seeds: Sequence[int], out_dir: Path) -> list[TrainConfig]:
    """The six variants of ``base`` for every seed, each with its own run folder in ``out_dir``;
    everything else (steps, batch, learning rate, network) is ``base``'s, so budgets are equal."""
    if not seeds:
        raise ConfigError("the ablation needs at least one seed")
    return [
        dataclasses.replace(
            base,
            name=name,
            run_dir=str(Path(out_dir) / name),
            seed=seed,
            model=base.model.replace(permutation=permutation, coupling=coupling),
        )
        for permutation in PERMUTATIONS
        for coupling in COUPLINGS
        for seed in seeds
        for name in [f"{permutation}-{coupling}-seed{seed}"]
    ]


def _run_of(config: TrainConfig, result: Optional[TrainResult]) -> AblationRun:
    """An :class:`AblationRun` from a train result, or from a finished run folder."""
    run_dir = Path(config.run_dir)
    if result is None:
        summary = json.loads((run_dir / "result.json").read_text())
        test_bpd, wall, metrics = (
            summary["test_bpd"],
            summary["wall_time_s"],
            read_metrics(run_dir / "metrics.csv"),
        )
    else:
        test_bpd, wall, metrics = result.test_bpd, result.wall_time_s, result.metrics
    curve = [(row["step"], row["val_bpd"]) for row in metrics if row.get("val_bpd") is not None]
    return AblationRun(
        config.model.permutation, config.model.coupling, config.seed, test_bpd, curve, wall, run_dir
    )


def run_ablation(
    base: TrainConfig,
    seeds: Sequence[int],
    out_dir: Path,
    train_fn: Trainer = train,
    on_done: Optional[Callable[[AblationRun], None]] = None,
) -> list[AblationRun]:
    """Train every variant and seed (see :func:`variant_configs`); a variant whose run folder
    already has a ``result.json`` is read back instead, an interrupted one resumed, so an
    ablation that was stopped continues where it was. ``on_done`` sees each run as it ends."""
    runs = []
    for config in variant_configs(base, seeds, out_dir):
        finished = (Path(config.run_dir) / "result.json").is_file()
        run = _run_of(config, None if finished else train_fn(config, resume="auto"))
        if on_done is not None:
            on_done(run)
        runs.append(run)
    return runs


def summarize(runs: Sequence[AblationRun]) -> list[VariantSummary]:
    """One summary per variant, best (lowest mean bits/dim) first."""
    groups: dict[tuple[str, str], list[float]] = {}
    for run in runs:
        groups.setdefault((run.permutation, run.coupling), []).append(run.test_bpd)
    summaries = [
        VariantSummary(
            p, c, statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0, tuple(v)
        )
        for (p, c), v in groups.items()
    ]
    return sorted(summaries, key=lambda s: s.mean)


def orderings(summaries: Sequence[VariantSummary]) -> dict[str, tuple[str, str]]:
    """The measured orders (best first) next to the paper's, one entry per comparison:
    permutations within each coupling, and couplings within each permutation."""
    mean = {(s.permutation, s.coupling): s.mean for s in summaries}
    result = {}
    for coupling in COUPLINGS:
        found = [p for p in PERMUTATIONS if (p, coupling) in mean]
        measured = sorted(found, key=lambda p: mean[(p, coupling)])
        result[f"permutations, {coupling}"] = (" < ".join(measured), " < ".join(reversed(found)))
    for permutation in PERMUTATIONS:
        found = [c for c in COUPLINGS if (permutation, c) in mean]
        measured = sorted(found, key=lambda c: mean[(permutation, c)])
        result[f"couplings, {permutation}"] = (" < ".join(measured), " < ".join(reversed(found)))
    return result


def write_table(summaries: Sequence[VariantSummary], csv_path: Path, markdown_path: Path) -> None:
    """The variants, best first, as CSV and as a markdown table with the measured orderings
    (in test bits/dim, lower is better) beside the paper's."""
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "rank",
                "permutation",
                "coupling",
                "test_bpd_mean",
                "test_bpd_std",
                "seeds",
                "test_bpd_per_seed",
            ]
        )
        for rank, s in enumerate(summaries, 1):
            writer.writerow(
                [
                    rank,
                    s.permutation,
                    s.coupling,
                    f"{s.mean:.4f}",
                    f"{s.std:.4f}",
                    len(s.values),
                    " ".join(f"{v:.4f}" for v in s.values),
                ]
            )
    lines = [
        "| rank | permutation | coupling | test bits/dim | seeds |",
        "|---:|---|---|---:|---:|",
    ]
    for rank, s in enumerate(summaries, 1):
        spread = f" ± {s.std:.4f}" if len(s.values) > 1 else ""
        lines.append(
            f"| {rank} | {s.permutation} | {s.coupling} | {s.mean:.4f}{spread} | {len(s.values)} |"
        )
    lines += ["", "| comparison (bits/dim, lower first) | measured | paper |", "|---|---|---|"]
    lines += [
        f"| {name} | {measured} | {paper} |"
        for name, (measured, paper) in orderings(summaries).items()
    ]
    markdown_path.write_text("\n".join(lines) + "\n")


def plot_curves(runs: Sequence[AblationRun], path: Path, title: str = "") -> Path:
    """Validation bits/dim against steps, one line per variant (mean over seeds at each step)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(zip(PERMUTATIONS, ("tab:red", "tab:orange", "tab:blue")))
    styles = dict(zip(COUPLINGS, ("--", "-")))
    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    for permutation in PERMUTATIONS:
        for coupling in COUPLINGS:
            points: dict[float, list[float]] = {}
            for run in runs:
                if (run.permutation, run.coupling) == (permutation, coupling):
                    for step, bpd in run.curve:
                        points.setdefault(step, []).append(bpd)
            if points:
                steps = sorted(points)
                axes.plot(
                    steps,
                    [statistics.fmean(points[s]) for s in steps],
                    styles[coupling],
                    color=colors[permutation],
                    marker="o",
                    markersize=2,
                    label=f"{permutation} + {coupling}",
                )
    axes.set_xlabel("step")
    axes.set_ylabel("validation bits/dim")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
