"""The bits/dim learning curves of a run, as a PNG."""

from __future__ import annotations

from pathlib import Path

from .run_log import read_metrics


def plot_bpd_curves(metrics_csv: Path, out: Path, title: str = "") -> Path:
    """Plot train and test bits/dim against steps from ``metrics.csv`` into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_csv)
    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    for column, label, style in (
        ("train_bpd", "train", "-"),
        ("val_bpd", "validation", "o-"),
        ("test_bpd", "test", "s--"),
    ):
        points = [(r["step"], r[column]) for r in rows if r[column] is not None]
        if points:
            steps, values = zip(*points)
            axes.plot(steps, values, style, label=label, markersize=3)
    axes.set_xlabel("step")
    axes.set_ylabel("bits/dim")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    plt.close(figure)
    return out
