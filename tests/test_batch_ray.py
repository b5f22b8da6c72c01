"""The Ray runner on a local Ray instance (2 CPUs, started here): the same outputs, byte for byte, as the
local runner for the same manifest and threads per worker, and a batch whose driver is killed resumes."""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from batch_files import batch_command, ledger_rows, leftovers, make_job_files, outputs_in, pngs, run_batch

JOBS = 12


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """A Ray head on this machine with 2 CPUs, token authentication on (the token in this process's
    environment, which the drivers inherit); its address."""
    ray = str(Path(sys.executable).with_name("ray"))
    port = _free_port()
    saved = {name: os.environ.get(name) for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    started = subprocess.run([ray, "start", "--head", "--num-cpus=2", f"--port={port}",
                              "--node-ip-address=127.0.0.1", "--include-dashboard=false",
                              "--disable-usage-stats"], capture_output=True, text=True, timeout=300)
    assert started.returncode == 0, started.stderr + started.stdout
    yield f"127.0.0.1:{port}"
    subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=300)
    for name, value in saved.items():
        os.environ.pop(name, None) if value is None else os.environ.update({name: value})


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return make_job_files(tmp_path_factory.mktemp("batch-ray"), JOBS, seed=5)


def test_ray_gives_the_local_runners_bytes_and_resumes_after_its_driver_is_killed(cluster, manifest,
                                                                                   tmp_path):
    local = run_batch(manifest, tmp_path / "local")
    assert local.returncode == 0, local.stderr
    on_ray = run_batch(manifest, tmp_path / "ray", "--ray", cluster, "--workers", "2")
    assert on_ray.returncode == 0, on_ray.stderr
    assert len(pngs(tmp_path / "local")) == JOBS
    assert pngs(tmp_path / "ray") == pngs(tmp_path / "local")

    output = tmp_path / "resumed"
    driver = subprocess.Popen(batch_command(manifest, output, "--ray", cluster, "--workers", "2"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while driver.poll() is None and len(outputs_in(output) if output.is_dir() else []) < 3:
        time.sleep(0.01)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert 0 < len(outputs_in(output)) < JOBS, "the driver was not killed mid-batch; the test proved nothing"
    time.sleep(5)  # Ray ends the dead driver's workers
    resumed = run_batch(manifest, output, "--ray", cluster, "--workers", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert pngs(output) == pngs(tmp_path / "local")
    assert leftovers(output) == []
    rows = ledger_rows(output)
    assert {state for state, _ in rows.values()} == {"done"} and len(rows) == JOBS


def test_an_unreachable_cluster_is_one_line(manifest, tmp_path):
    done = run_batch(manifest, tmp_path / "out", "--ray", f"127.0.0.1:{_free_port()}")
    assert done.returncode == 2 and done.stderr.strip().startswith("error: cannot reach the Ray cluster")
    assert "Traceback" not in done.stderr
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
