"""The report of a :class:`~glowflow.ood.detect.Detection`: JSON, Markdown tables, per-image
scores and histograms of every score, in against out."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .detect import Detection, ScoredSet

METRICS = (("auroc", "AUROC"), ("aupr", "AUPR"), ("fpr95", "FPR at 95% TPR"))
"""The metrics' keys and titles, in report order."""


def _set_summary(scored: ScoredSet) -> dict[str, Any]:
    measured = scored.measured
    summary = {
        "images": len(measured.bpd),
        "mean_scores": {name: float(values.mean()) for name, values in scored.scores.items()},
        "decomposition": {
            "quantization_bpd": measured.levels.quantization,
            "latent_bpd": measured.levels.latent.mean(dim=0).tolist(),
            "logdet_bpd": measured.levels.logdet.mean(dim=0).tolist(),
            "total_bpd": float(measured.bpd.mean()),
        },
        "png_bpd": float(measured.png_bpd.mean()),
        "zlib_bpd": float(measured.zlib_bpd.mean()),
    }
    if measured.background_bpd is not None:
        summary["background_bpd"] = float(measured.background_bpd.mean())
    return summary


def report_dict(detection: Detection, about: Mapping[str, Any]) -> dict[str, Any]:
    """Everything :func:`write_report` puts in ``report.json``; ``about`` (model, command, ...)
    comes first."""
    sets = [detection.in_set, *detection.out_sets]
    return {
        **about,
        "in": detection.in_set.name,
        "out": [scored.name for scored in detection.out_sets],
        "reference": detection.reference,
        "entropy_bpd": detection.entropy,
        "typicality_batch": detection.typicality_batch,
        "scores": detection.score_names,
        "metrics": {
            out: {score: result.to_dict() for score, result in by_score.items()}
            for out, by_score in detection.metrics.items()
        },
        "sets": {scored.name: _set_summary(scored) for scored in sets},
    }


def markdown(detection: Detection) -> str:
    """Tables of every metric (rows: scores, columns: out sets) and of the per-level
    decomposition (mean bits/dim of each set)."""
    outs = [scored.name for scored in detection.out_sets]
    lines = [
        f"# Out-of-distribution detection: in-distribution `{detection.in_set.name}`",
        "",
        f"Scores: higher means more out-of-distribution. Typicality: batches of "
        f"{detection.typicality_batch}, H = {detection.entropy:.4f} bits/dim "
        f"(`{detection.reference}`).",
        "",
    ]
    for key, title in METRICS:
        lines += [
            f"## {title}",
            "",
            "| score | " + " | ".join(f"`{o}`" for o in outs) + " |",
            "|---|" + "---:|" * len(outs),
        ]
        for score in detection.score_names:
            cells = (f"{getattr(detection.metrics[o][score], key):.3f}" for o in outs)
            lines.append(f"| {score} | " + " | ".join(cells) + " |")
        lines.append("")
    levels = detection.in_set.measured.levels.latent.shape[1]
    header = [f"level {i + 1} {part}" for i in range(levels) for part in ("latent", "log-det")]
    lines += [
        "## Per-level decomposition (mean bits/dim)",
        "",
        "| set | " + " | ".join(header) + " | log2(n_bins) | total |",
        "|---|" + "---:|" * (len(header) + 2),
    ]
    for scored in [detection.in_set, *detection.out_sets]:
        bits = scored.measured.levels
        latent, logdet = bits.latent.mean(dim=0), bits.logdet.mean(dim=0)
        cells = [f"{float(v):.3f}" for i in range(levels) for v in (latent[i], logdet[i])]
        cells += [f"{bits.quantization:.3f}", f"{float(bits.total.mean()):.3f}"]
        lines.append(f"| `{scored.name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def file_stem(name: str) -> str:
    """A set's name as a file name part: runs of other characters than letters, digits, ``.``,
    ``_`` and ``-`` become ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "set"


def plot_histograms(detection: Detection, out: ScoredSet, path: Path) -> Path:
    """One PNG with a panel per score: histograms of the in-distribution set's and ``out``'s
    scores on shared bins, each normalized to unit area; the panel's title gives the AUROC."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = detection.score_names
    columns = min(4, len(names))
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(3.2 * columns, 2.6 * rows), dpi=100, squeeze=False
    )
    for axis, name in zip(axes.flat, names):
        inside = detection.in_set.scores[name].numpy()
        outside = out.scores[name].numpy()
        edges = np.histogram_bin_edges(np.concatenate([inside, outside]), bins=40)
        axis.hist(inside, bins=edges, density=True, alpha=0.6, label=detection.in_set.name)
        axis.hist(outside, bins=edges, density=True, alpha=0.6, label=out.name)
        axis.set_title(f"{name} (AUROC {detection.metrics[out.name][name].auroc:.3f})", fontsize=9)
        axis.tick_params(labelsize=7)
    for axis in axes.flat[len(names) :]:
        axis.axis("off")
    axes.flat[0].legend(fontsize=7)
    figure.suptitle(
        f"{detection.in_set.name} (in) against {out.name} (out); higher: more out-of-distribution",
        fontsize=10,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def write_report(detection: Detection, folder: Path, about: Mapping[str, Any]) -> list[Path]:
    """Write ``report.json``, ``report.md``, ``scores.npz`` (every set's per-image scores, keys
    ``SET/SCORE``) and ``hist_<out set>.png`` into ``folder``; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    report = folder / "report.json"
    report.write_text(json.dumps(report_dict(detection, about), indent=2) + "\n")
    table = folder / "report.md"
    table.write_text(markdown(detection))
    scores = folder / "scores.npz"
    np.savez(
        scores,
        **{
            f"{scored.name}/{name}": values.numpy()
            for scored in [detection.in_set, *detection.out_sets]
            for name, values in scored.scores.items()
        },
    )
    pictures = [
        plot_histograms(detection, out, folder / f"hist_{file_stem(out.name)}.png")
        for out in detection.out_sets
    ]
    return [report, table, scores, *pictures]
