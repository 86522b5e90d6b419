"""The benchmark harness runs end to end: a short run of two scenarios prints its table and
writes JSON with every figure. Speeds are the benchmark's business (bench/RESULTS.md), not the
tests': nothing here depends on how fast the machine is."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import require

ROOT = Path(__file__).resolve().parent.parent
FIELDS = {
    "name",
    "what",
    "target",
    "requests_per_s",
    "p50_ms",
    "p99_ms",
    "errors",
    "ratio",
    "rss_mb",
    "cpu_ms_per_request",
    "met",
    "extra",
}


def test_quick_run_prints_the_table_and_writes_json(tmp_path: Path) -> None:
    require(shutil.which("wrk"), "wrk is not installed (apt-get install wrk)")
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIANEST_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            # Long enough for a request to be created on a busy machine just after start.
            "--duration",
            "3",
            "--scenario",
            "dashboard-json",
            "--scenario",
            "request-create",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| scenario | req/s | p50 ms | p99 ms | errors | vs baseline |" in result.stdout
    report = json.loads(out.read_text())
    assert report["machine"]["cpus"] == os.cpu_count()
    assert report["mode"] == "quick"
    assert report["baseline_requests_per_s"] > 0
    scenarios = {s["name"]: s for s in report["scenarios"]}
    assert set(scenarios) == {"baseline", "idle", "dashboard-json", "request-create"}
    for scenario in scenarios.values():
        assert set(scenario) == FIELDS, scenario["name"]
    for name in ("baseline", "dashboard-json", "request-create"):
        figures = scenarios[name]
        assert figures["requests_per_s"] > 0, name
        assert 0 < figures["p50_ms"] <= figures["p99_ms"], name
        assert figures["errors"] == 0, (name, result.stdout)
        assert figures["ratio"] > 0, name
        assert name in result.stdout
    assert scenarios["request-create"]["extra"]["created"] > 0
    assert scenarios["idle"]["rss_mb"] > 0
    assert scenarios["idle"]["extra"]["start_to_ready_s"] > 0


def test_without_wrk_the_benchmark_says_how_to_get_it(tmp_path: Path) -> None:
    # A PATH without wrk, nor apt-get to fetch it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIANEST_")}
    env["PATH"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(tmp_path / "r.json")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "wrk" in result.stderr and "apt-get install wrk" in result.stderr
    assert not (tmp_path / "r.json").exists()


def test_only_a_complete_full_run_replaces_the_published_tables(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from bench.harness import parse, update_results
    finally:
        sys.path.remove(str(ROOT))
    complete = parse([])
    assert complete.results_path == ROOT / "bench" / "RESULTS.md"
    assert complete.readme_path == ROOT / "README.md"
    for partial in (["--quick"], ["--scenario", "ws-fanout"]):
        options = parse(partial)
        assert options.results_path is None and options.readme_path is None
    # The README carries the markers the table goes between, and keeps what surrounds them.
    readme = (ROOT / "README.md").read_text()
    assert "<!-- bench:latest -->" in readme and "<!-- /bench:latest -->" in readme
    copy = tmp_path / "README.md"
    copy.write_text(readme)
    report = json.loads((ROOT / "bench" / "results.json").read_text())
    update_results(copy, report)
    updated = copy.read_text()
    assert updated.split("<!-- bench:latest -->")[0] == readme.split("<!-- bench:latest -->")[0]
    assert updated.split("<!-- /bench:latest -->")[1] == readme.split("<!-- /bench:latest -->")[1]
    assert report["date"] in updated
