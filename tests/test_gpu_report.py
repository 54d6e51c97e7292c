"""benchmarks/gpu_report.py: the largest batch from the probes, JUnit totals, and a report that a
run cut short still writes (no torch, no processes)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gpu_report", ROOT / "benchmarks" / "gpu_report.py")
assert _spec is not None and _spec.loader is not None
gpu_report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_report)


def _probes(*statuses: str) -> list[dict]:
    return [
        {"name": f"max-batch-{128 * 2**i}", "status": status} for i, status in enumerate(statuses)
    ]


@pytest.mark.parametrize(
    "statuses, batch, limited_by",
    [
        (("ok", "ok", "oom"), 256, "oom"),
        (("ok", "timeout"), 128, "timeout"),
        (("ok", "ok"), 256, "cap"),
        (("oom",), None, "oom"),
    ],
)
def test_max_batch_is_the_largest_probe_that_ran_and_names_what_stopped_it(
    statuses: tuple[str, ...], batch: int | None, limited_by: str
) -> None:
    parts = [{"name": "eager", "status": "ok"}, *_probes(*statuses)]
    found = gpu_report.max_batch(parts)
    assert (found["batch"], found["limited_by"]) == (batch, limited_by)
    assert [probe["status"] for probe in found["probes"]] == list(statuses)
    assert gpu_report.max_batch(parts[:1]) is None


def test_junit_totals_name_the_failed_tests(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(
        '<testsuites><testsuite name="pytest" tests="3" failures="1" errors="0" skipped="1" '
        'time="2.5"><testcase classname="tests.test_a" name="test_ok"/>'
        '<testcase classname="tests.test_a" name="test_bad"><failure message="x"/></testcase>'
        '<testcase classname="tests.test_b" name="test_skip"><skipped/></testcase>'
        "</testsuite></testsuites>"
    )
    assert gpu_report.junit_totals(path) == {
        "tests": 3,
        "failures": 1,
        "errors": 0,
        "skipped": 1,
        "seconds": 2.5,
        "failed": ["tests.test_a::test_bad"],
    }


def test_every_call_rewrites_the_report_and_a_broken_file_is_noted(tmp_path: Path) -> None:
    output = tmp_path / "gpu.json"
    gpu_report.main([str(tmp_path), str(output), "begin", "--deadline", "450", "--setting", "a=b"])
    assert json.loads(output.read_text())["parts"] == []
    broken = tmp_path / "eager.json"
    broken.write_text("{not json")
    gpu_report.main(
        [str(tmp_path), str(output), "part", "eager", "timeout", "80", "--file", str(broken)]
    )
    gpu_report.main([str(tmp_path), str(output), "part", "compile", "skipped", "0", "--note", "x"])
    document = json.loads(output.read_text())
    assert document["settings"] == {"a": "b"} and document["deadline_s"] == 450
    assert [(p["name"], p["status"]) for p in document["parts"]] == [
        ("eager", "timeout"),
        ("compile", "skipped"),
    ]
    assert "unreadable eager.json" in document["parts"][0]["note"]
    assert document["figures"] == [] and document["max_batch"] is None
