"""The generated ``README.md`` model card of a model folder (Hugging Face style).

The card is written from the folder's ``config.json`` record alone (see
:mod:`glowflow.store.record`): a YAML header for the Hub, then the architecture, the parameter
count, the data and its preprocessing, the measured bits/dim and how it was measured, where the
weights came from (the command that trained or converted them) and how to use the model.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..families import get_family


def _architecture(record: Mapping[str, Any]) -> list[str]:
    """The family, then one table row per config field that differs from the family config's
    default (the shape always), its runtime fields left out."""
    family = get_family(record["family"])
    config = family.config_class.from_dict(record["config"])
    default = family.config_class()
    rows = [f"| family | {family.name}: {family.summary} |"]
    if hasattr(config, "latent_shapes"):
        rows.append(
            f"| latent shapes (finest first) | {', '.join(map(str, config.latent_shapes()))} |"
        )
    for name in config.field_names():
        if config.role(name) == "runtime":
            continue
        value = getattr(config, name)
        if value != getattr(default, name) or config.role(name) == "shape":
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


def _provenance(source: Mapping[str, Any]) -> list[str]:
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


def _hub_header(record: Mapping[str, Any]) -> list[str]:
    """The Hub's card metadata (YAML): library, license, datasets, tags, and the measured
    bits/dim as a model-index result, so a pushed model is searchable."""
    data, metrics = record["data"], record.get("metrics") or {}
    lines = [
        "---",
        "library_name: glowflow",
        "license: mit",
        f"datasets: [{data['dataset']}]",
        f"tags: [normalizing-flows, {record['family']}, generative-model, pytorch]",
    ]
    if isinstance(metrics.get("test_bpd"), (int, float)):
        lines += [
            "model-index:",
            f"- name: {record.get('name', 'glowflow model')}",
            "  results:",
            "  - task: {type: density-estimation}",
            f"    dataset: {{name: {data['dataset']}, type: {data['dataset']}, split: test}}",
            "    metrics:",
            f"    - {{type: bits-per-dim, value: {metrics['test_bpd']:.4f}}}",
        ]
    return [*lines, "---"]


def model_card(record: Mapping[str, Any]) -> str:
    """The model card (Markdown) of a model folder's ``config.json`` record."""
    name = record.get("name", "glowflow model")
    data = record["data"]
    classes = data.get("num_classes")
    family = get_family(record["family"])
    config = family.config_class.from_dict(record["config"])
    class_fields = config.fields_with_role("classes")
    conditional = bool(class_fields) and getattr(config, class_fields[0]) is not None
    use_class = ", y=torch.tensor([0, 1, 2, 3])" if conditional else ""
    dequantizer = record.get("dequantizer") or {"kind": "uniform"}
    lines = [
        *_hub_header(record),
        "",
        f"# {name}",
        "",
        f"A {family.summary.split(':')[0]} normalizing flow for `{data['dataset']}` images of "
        f"shape {tuple(data['shape'])} with {data['n_bins']} levels per channel"
        + (f", class-conditional on {classes} classes" if conditional else "")
        + ", in the [glowflow](https://pypi.org/project/glowflow/) model-folder format.",
        "",
        "## Architecture",
        "",
        *_architecture(record),
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
        f"- dequantization: {dequantizer.get('kind')}"
        + (
            " (a learned q(u | x), in dequantizer.safetensors)"
            if dequantizer.get("kind") != "uniform"
            else ""
        ),
        "",
        "## Results",
        "",
        *_metrics(record.get("metrics") or {}),
        "",
        "## Provenance",
        "",
        *_provenance(record.get("provenance") or {}),
        "",
        "## Use",
        "",
        "```python",
        "import glowflow",
        'model = glowflow.load_model("PATH_OR_REPO_ID")   # .flow, .data.n_bins, .config',
        f"samples = model.flow.sample(4, temperature=0.7{use_class})",
        "```",
        "",
        "```bash",
        "glowflow sample PATH_OR_REPO_ID --temperature 0 0.5 0.7 1.0"
        + (" --class 3" if conditional else ""),
        "glowflow eval PATH_OR_REPO_ID --json",
        "```",
        "",
        "Files: `config.json` (the family, its config and the data), `model.safetensors` "
        "(weights, sha256 in its metadata; loading never unpickles), this card.",
        "",
    ]
    return "\n".join(lines)
