"""The one JSON document of a ``benchmarks/gpu.sh`` run, rewritten after every part.

``gpu.sh`` calls ``python benchmarks/gpu_report.py WORK OUTPUT begin ...`` once, then
``... part NAME STATUS SECONDS --command CMD [--file F] [--note TEXT]`` after each part; each
call adds to ``WORK/report.json`` and rewrites ``OUTPUT`` from it, so a run cut short still
leaves every finished part behind. A part's file is a ``glowflow bench`` JSON document (it has a
``summary``), a ``benchmarks/sync_count.py`` one (``zero_syncs``) or pytest's JUnit XML
(``.xml``); the document gathers their figures:

* ``figures``: one row per benchmark summary line -- images/s of training, sampling and
  encoding (medians), peak memory (``max_memory_allocated`` on CUDA, RSS on the CPU), each
  throughput's fraction of the measured matmul limit, and the part, batch, ``--compile``,
  ``--tf32`` it ran with;
* ``max_batch``: the largest batch of the ``max-batch-N`` probes that ran, and what stopped
  the doubling (``oom``, ``timeout``, ``failed``, ``skipped``, or ``cap``);
* ``peer_ratios``, ``syncs``, ``tests``: the peers' per-round ratios, the synchronization count
  and the CUDA test run's totals with the failed tests' names.

Imports no torch, so each call costs a fraction of a second.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any, Optional, Sequence

Document = dict[str, Any]
TASKS = ("train", "sample", "encode")


def junit_totals(path: Path) -> Document:
    """Totals of a pytest JUnit XML file and the ids of its failed or erroring tests."""
    root = ElementTree.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        raise ValueError(f"{path}: no <testsuite> element")
    failed = [
        f"{case.get('classname')}::{case.get('name')}"
        for case in suite.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    return {
        **{key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")},
        "seconds": float(suite.get("time", 0.0)),
        "failed": failed,
    }


def figure_rows(part: str, document: Document) -> list[Document]:
    """One row per summary line of a ``glowflow bench`` document."""
    settings = document["settings"]
    rates: dict[tuple[Any, ...], Any] = {}
    for result in document["results"]:
        key = tuple(result[k] for k in ("implementation", "config", "device", "mode", "precision"))
        rates.setdefault(key, result.get("matmul_flops_per_s"))
    rows = []
    for entry in document["summary"]:
        key = tuple(entry[k] for k in ("implementation", "config", "device", "mode", "precision"))
        row = {
            "part": part,
            **{k: entry[k] for k in ("implementation", "config", "device", "mode", "precision")},
            "batch": settings["batch"],
            "compile": settings["compile"],
            "tf32": settings["tf32"],
        }
        for task in TASKS:
            rate = entry.get(f"{task}_images_per_s")
            row[f"{task}_images_per_s"] = None if rate is None else rate["median"]
        row["peak_memory_mb"] = entry.get("peak_allocated_mb", entry.get("peak_rss_mb"))
        row["fraction_of_limit"] = entry["fraction_of_limit"]
        row["matmul_flops_per_s"] = rates.get(key)
        row["reconstruction_max_abs_error"] = entry.get("reconstruction_max_abs_error")
        rows.append(row)
    return rows


PROBE = re.compile(r"max-batch-(\d+)$")


def max_batch(parts: Sequence[Document]) -> Optional[Document]:
    """The largest batch among the ``max-batch-N`` probes that ran, and what ended the
    search: the status of the first probe that did not (``cap`` when all did)."""
    probes = [
        {"batch": int(match.group(1)), "status": part["status"]}
        for part in parts
        if (match := PROBE.match(part["name"]))
    ]
    if not probes:
        return None
    fitted = [probe["batch"] for probe in probes if probe["status"] == "ok"]
    stopped = [probe["status"] for probe in probes if probe["status"] != "ok"]
    return {
        "batch": max(fitted) if fitted else None,
        "limited_by": stopped[0] if stopped else "cap",
        "probes": probes,
    }


def build(report: Document) -> Document:
    """The output document from the run's metadata and its parts so far."""
    parts, figures, ratios = report["parts"], [], []
    document: Document = {**report["run"], "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    document.update(machine=None, tests=None, syncs=None)
    for part in parts:
        content = part.get("content")
        if not isinstance(content, dict):
            continue
        if "summary" in content:
            document["machine"] = document["machine"] or content["machine"]
            figures += figure_rows(part["name"], content)
            ratios += [{"part": part["name"], **ratio} for ratio in content["peer_ratios"]]
        elif "zero_syncs" in content:
            document["syncs"] = content
        elif "tests" in content:
            document["tests"] = content
    document.update(
        figures=figures,
        max_batch=max_batch(parts),
        peer_ratios=ratios,
        parts=[{k: v for k, v in part.items() if k != "content"} for part in parts],
        documents={part["name"]: part["content"] for part in parts if part.get("content")},
    )
    return document


def _read_part_file(path: Path) -> Any:
    if not path.is_file():
        return None
    if path.suffix == ".xml":
        return junit_totals(path)
    return json.loads(path.read_text())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, help="the run's scratch folder")
    parser.add_argument("output", type=Path, help="the JSON document to rewrite")
    verbs = parser.add_subparsers(dest="verb", required=True)
    begin = verbs.add_parser("begin", help="start the report with the run's settings")
    begin.add_argument("--dry-run", action="store_true")
    begin.add_argument("--deadline", type=int, required=True, help="the run's budget, seconds")
    begin.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE")
    part = verbs.add_parser("part", help="add a finished (or skipped) part")
    part.add_argument("name")
    part.add_argument("status", choices=("ok", "failed", "oom", "timeout", "skipped"))
    part.add_argument("seconds", type=float)
    part.add_argument("--command", default="")
    part.add_argument("--file", type=Path, default=None, help="its JSON or JUnit XML output")
    part.add_argument("--note", default=None)
    verbs.add_parser("show", help="print the parts and figures so far")
    return parser


def summary_lines(document: Document) -> list[str]:
    """The parts' statuses, then one line per figure, then the largest batch and the syncs."""
    lines = [
        f"{part['name']:<16} {part['status']:<8} {part['seconds']:>5.0f}s  {part.get('note', '')}"
        for part in document["parts"]
    ]
    for row in document["figures"]:
        rates = ", ".join(
            f"{task} {row[f'{task}_images_per_s']:.1f}/s ({row['fraction_of_limit'][task]:.0%})"
            for task in TASKS
            if row[f"{task}_images_per_s"] is not None
        )
        options = "".join(f" {flag}" for flag in ("compile", "tf32") if row[flag])
        lines.append(
            f"{row['part']}: {row['implementation']} {row['config']} batch {row['batch']} {row['precision']}"
            f"{options} {row['mode']}: {rates}; peak {row['peak_memory_mb']:.0f} MB"
        )
    for ratio in document["peer_ratios"]:
        medians = ", ".join(
            f"{task} {ratio[task]['median']:.2f}x" for task in TASKS if task in ratio
        )
        lines.append(f"{ratio['part']}: glowflow / {ratio['peer']} ({ratio['mode']}): {medians}")
    if document["max_batch"] is not None:
        found = document["max_batch"]
        lines.append(f"largest batch: {found['batch']} (limited by {found['limited_by']})")
    if document["syncs"] is not None:
        lines.append(f"zero syncs in the training step: {document['syncs']['zero_syncs']}")
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    state = args.work / "report.json"
    if args.verb == "show":
        print("\n".join(summary_lines(build(json.loads(state.read_text())))))
        return 0
    if args.verb == "begin":
        settings = dict(item.partition("=")[::2] for item in args.setting)
        run = {
            "script": "benchmarks/gpu.sh",
            "dry_run": args.dry_run,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "deadline_s": args.deadline,
            "settings": settings,
        }
        report: Document = {"run": run, "parts": []}
    else:
        report = json.loads(state.read_text())
        entry: Document = {
            "name": args.name,
            "status": args.status,
            "seconds": args.seconds,
            "command": args.command,
        }
        if args.note:
            entry["note"] = args.note
        if args.file is not None:
            try:
                entry["content"] = _read_part_file(args.file)
            except (ValueError, ElementTree.ParseError) as error:
                entry["note"] = f"{args.note or ''} (unreadable {args.file.name}: {error})".strip()
        report["parts"].append(entry)
    state.write_text(json.dumps(report))
    args.output.write_text(json.dumps(build(report), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
