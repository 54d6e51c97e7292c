"""The generated ``README.md`` model card of a pretrained folder (Hugging Face style).

The card is written from the folder's ``config.json`` record alone (see
:mod:`glowflow.pretrained`): a YAML header for the Hub, then the architecture, the parameter
count, the data and its preprocessing, the measured bits/dim and how it was measured, where the
weights came from (the command that trained or converted them) and how to use the model.
"""

from __future__ import annotations

from typing import Any, Mapping

from .config import GlowConfig


def _architecture(glow: Mapping[str, Any]) -> list[str]:
    """One table row per GlowConfig field that differs from the default, plus the shape rows."""
    config = GlowConfig.from_dict(glow)
    default = GlowConfig()
    rows = [
        f"| levels L x steps K | {config.num_glow_blocks} x {config.num_steps_per_block} |",
        f"| latent shapes (finest first) | {', '.join(map(str, config.latent_shapes()))} |",
    ]
    for name in GlowConfig.field_names():
        value = getattr(config, name)
        if name in ("num_glow_blocks", "num_steps_per_block", "memory_mode", "validate_args"):
            continue
        if value != getattr(default, name) or name in ("output_shape", "hidden_channels"):
            rows.append(f"| `{name}` | `{value}` |")
    return ["| | |", "|---|---|", *rows]


def _metrics(metrics: Mapping[str, Any]) -> list[str]:
    if not metrics:
        return ["No bits/dim was measured for this folder."]
    lines = []
    if "test_bpd" in metrics:
        stderr = metrics.get("test_bpd_stderr")
        spread = f" +- {stderr:.4f}" if isinstance(stderr, (int, float)) else ""
        lines.append(f"**Test bits/dim: {metrics['test_bpd']:.4f}{spread}**")
    for key, value in metrics.items():
        if key not in ("test_bpd", "test_bpd_stderr"):
            lines.append(f"- {key}: {value}")
    return lines


def _source(source: Mapping[str, Any]) -> list[str]:
    lines = []
    labels = {
        "command": "Trained with",
        "export_command": "Exported with",
        "convert_command": "Converted with",
    }
    for key, label in labels.items():
        if source.get(key):
            lines += [f"{label}:", "", "```bash", str(source[key]), "```", ""]
    for key, value in source.items():
        if key in labels or key in ("notes", "train_config"):
            continue
        lines.append(f"- {key}: `{value}`")
    notes = source.get("notes") or []
    if notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in notes]
    return lines or ["Unknown."]


def model_card(record: Mapping[str, Any]) -> str:
    """The model card (Markdown) of a pretrained ``config.json`` record."""
    name = record.get("name", "glowflow model")
    data = record["data"]
    classes = data.get("num_classes")
    conditional = record["glow"].get("num_classes") is not None
    use_class = ", y=torch.tensor([0, 1, 2, 3])" if conditional else ""
    lines = [
        "---",
        "library_name: glowflow",
        "tags: [normalizing-flows, glow, generative-model, pytorch]",
        "---",
        "",
        f"# {name}",
        "",
        f"A Glow normalizing flow (Kingma & Dhariwal 2018) for `{data['dataset']}` images of shape "
        f"{tuple(data['shape'])} (C, H, W) with {data['n_bins']} levels per channel"
        + (f", class-conditional on {classes} classes" if conditional else "")
        + ", in the "
        "[glowflow](https://pypi.org/project/glowflow/) pretrained format.",
        "",
        "## Architecture",
        "",
        *_architecture(record["glow"]),
        "",
        f"Parameters: {record.get('parameters', 'unknown'):,}"
        if isinstance(record.get("parameters"), int)
        else "Parameters: unknown",
        "",
        "## Data",
        "",
        f"- dataset: `{data['dataset']}`, shape {tuple(data['shape'])}, n_bins {data['n_bins']}"
        + (f", {classes} classes" if classes else ""),
        f"- image_size: {data.get('image_size')}, n_bits: {data.get('n_bits')}",
        f"- inputs: {data.get('preprocessing')}",
        "",
        "## Results",
        "",
        *_metrics(record.get("metrics") or {}),
        "",
        "## Source",
        "",
        *_source(record.get("source") or {}),
        "",
        "## Use",
        "",
        "```python",
        "import glowflow",
        'model = glowflow.load_model("PATH_OR_REPO_ID")   # .flow, .data.n_bins, .glow',
        f"samples = model.flow.sample(4, temperature=0.7{use_class})",
        "```",
        "",
        "```bash",
        "glowflow sample PATH_OR_REPO_ID --temperature 0 0.5 0.7 1.0"
        + (" --class 3" if conditional else ""),
        "glowflow eval PATH_OR_REPO_ID --json",
        "```",
        "",
        "Files: `config.json` (the GlowConfig and the data), `model.safetensors` (weights, "
        "sha256 in its metadata; loading never unpickles), this card.",
        "",
    ]
    return "\n".join(lines)
