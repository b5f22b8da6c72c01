"""bench/phases.py on a tiny model: every phase of a real CLI job is reported, they fit inside the job's wall
time, and the report names the machine's CPU and its relevant flags."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("import", "load", "text_encode", "vae_encode", "sampling", "decode", "composite", "write")


def test_phases_bench_reports_every_phase_of_a_cli_job(tmp_path):
    from diffdiff.models import make_tiny_model

    model = make_tiny_model(tmp_path, "sd1", single_file=True)
    out = tmp_path / "phases.json"
    command = [sys.executable, str(ROOT / "bench" / "phases.py"), "--model", str(model), "--sizes", "64",
               "--precisions", "fp32", "--steps", "1", "--json", str(out)]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    report = json.loads(out.read_text())
    entry = report["results"]["64 fp32"]
    assert set(entry["phases"]) == set(PHASES)
    assert 0 < sum(entry["phases"].values()) < entry["wall"]
    assert entry["other"] > 0  # the interpreter's start, at least
    assert report["machine"]["cpu"] and isinstance(report["machine"]["flags"], list)
    for name in PHASES:
        assert name in run.stdout  # the printed table has a row per phase
