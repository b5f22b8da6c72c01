"""A batch survives being killed: SIGKILL at random points of a 50-job batch, five times, restarting each
time; at the end every job has exactly one output with the bytes of an uninterrupted run, no temporary files
remain, and the ledger agrees with the folder. Also: failures are recorded and retried on request, and two
batches cannot write one folder at once."""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from batch_files import batch_command, ledger_rows, leftovers, make_job_files, outputs_in, pngs, run_batch

from diffdiff.batch.ledger import Ledger
from diffdiff.errors import DiffdiffError

JOBS = 50
KILLS = 5


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return make_job_files(tmp_path_factory.mktemp("batch-resume"), JOBS)


@pytest.fixture(scope="module")
def reference(manifest):
    """The outputs of one uninterrupted run."""
    output = manifest.parent / "reference"
    done = run_batch(manifest, output)
    assert done.returncode == 0, done.stderr
    return pngs(output)


def _kill_when(command: list[str], outputs, count: int) -> None:
    """Start `command`, SIGKILL it once `outputs` holds `count` PNGs (or when it ends by itself)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while process.poll() is None:
            if outputs.is_dir() and len(outputs_in(outputs)) >= count:
                break
            time.sleep(0.005)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


def test_killed_five_times_every_job_ends_with_exactly_one_output(manifest, reference, tmp_path):
    assert len(reference) == JOBS
    output = tmp_path / "out"
    rng = np.random.default_rng(2026)
    targets = np.sort(rng.choice(np.arange(1, JOBS - 2), size=KILLS, replace=False))
    for target in targets:
        _kill_when(batch_command(manifest, output), output, int(target))
    killed_at = len(outputs_in(output))
    assert killed_at < JOBS, "the last kill came after the batch ended; the test proved nothing"
    done = run_batch(manifest, output)
    assert done.returncode == 0, done.stderr
    assert pngs(output) == reference  # every job once, with the bytes of the uninterrupted run
    assert leftovers(output) == []
    rows = ledger_rows(output)
    assert set(rows) == set(reference) and {state for state, _ in rows.values()} == {"done"}
    again = run_batch(manifest, output, "--stats", str(tmp_path / "stats.json"))
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert again.returncode == 0 and stats["skipped"] == JOBS and stats["done"] == 0


def test_a_deleted_output_is_made_again_and_only_it(manifest, reference, tmp_path):
    output = tmp_path / "out"
    assert run_batch(manifest, output).returncode == 0
    victim = sorted(reference)[7]
    (output / victim).unlink()
    (output / f".{victim}.k3jd8x_2.png").write_bytes(b"half")  # what a killed write leaves
    before = {name: os.stat(output / name).st_mtime_ns for name in reference if name != victim}
    run_batch(manifest, output, "--stats", str(tmp_path / "stats.json"))
    assert pngs(output) == reference and leftovers(output) == []
    assert {name: os.stat(output / name).st_mtime_ns for name in before} == before
    assert json.loads((tmp_path / "stats.json").read_text())["done"] == 1


def test_failures_are_recorded_and_retried_on_request(manifest, tmp_path):
    """A JPEG cut in half passes the up-front header check and fails when its job reads it."""
    from PIL import Image

    for name in ("images", "maps", "tiny.safetensors"):
        (tmp_path / name).symlink_to(manifest.parent / name)
    photo = tmp_path / "photo.jpg"
    Image.open(manifest.parent / "images/0.png").save(photo, quality=95)
    whole = photo.read_bytes()
    photo.write_bytes(whole[: len(whole) // 2])
    lines = manifest.read_text().splitlines()[:3]
    lines.append(json.dumps({**json.loads(lines[0]), "image": "photo.jpg", "seed": 99}))
    small = tmp_path / "jobs.jsonl"
    small.write_text("\n".join(lines) + "\n")
    output = tmp_path / "out"
    first = run_batch(small, output)
    assert first.returncode == 1 and "error: line 4: cannot read" in first.stderr, first.stderr
    assert sorted(state for state, _ in ledger_rows(output).values()) == ["done", "done", "done", "failed"]
    second = run_batch(small, output)
    assert second.returncode == 1 and "1 failed before (--retry-failed runs them)" in second.stderr
    photo.write_bytes(whole)  # the key is the file's bytes: a mended file is a new job
    third = run_batch(small, output)
    assert third.returncode == 0, third.stderr
    photo.write_bytes(whole[: len(whole) // 2])
    fourth = run_batch(small, output, "--retry-failed")
    assert fourth.returncode == 1 and "error: line 4: cannot read" in fourth.stderr
    with Ledger(output) as ledger:
        attempts = ledger._db.execute("SELECT MAX(attempts) FROM jobs WHERE state='failed'").fetchone()[0]
    assert attempts == 2  # the failed job ran again, and only on request


def test_one_batch_at_a_time_per_folder(tmp_path):
    with Ledger(tmp_path):
        with pytest.raises(DiffdiffError, match="another batch is writing"):
            Ledger(tmp_path).__enter__()
