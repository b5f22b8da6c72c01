"""The Ray runner: the same groups as the local runner, run by a pool of model-holding actors through Ray
Data (one row per group, streamed: each actor reads its group's inputs and writes its outputs itself, so
images never pass through the driver). The driver keeps the ledger. Outputs and inputs must be on a
filesystem every node sees; diffdiff must be installed on every node."""

from __future__ import annotations

import json
import logging
import resource
import socket

from ..errors import DiffdiffError
from .jobs import Job
from .work import ModelCache, Outcome, execute_group, group_counts, prepare_group

CPU_THREADS_ON_RAY = 1  # torch threads per actor unless --threads says otherwise
COUNT_COLUMNS = ("network_calls", "calls_saved", "model_loads", "load_seconds")


class GroupWorker:
    """A Ray Data actor: holds the model(s) and runs one group per call."""

    def __init__(self, folder: str, load_options: dict, threads: int):
        import torch

        from ..models import load_model

        torch.set_num_threads(threads)
        self.folder = folder
        self.cache = ModelCache(lambda path: load_model(path, **load_options))

    def __call__(self, batch: dict) -> dict:
        """One row per wanted job; the group's counts (and this call's model loads) ride on its first row."""
        from pathlib import Path

        columns = {name: [] for name in ("key", "error", "seconds", *COUNT_COLUMNS, "peak_rss_mb")}
        for jobs_text, wanted_text in zip(batch["jobs"], batch["wanted"]):
            group = [Job.from_dict(values) for values in json.loads(jobs_text)]
            wanted = set(json.loads(wanted_text))
            loads, load_seconds = self.cache.loads, self.cache.seconds
            try:
                model = self.cache.get(group[0].model)
            except DiffdiffError as exc:
                outcomes, counts = [Outcome(key, str(exc), 0.0) for key in sorted(wanted)], group_counts({})
            else:
                outcomes, counts = execute_group(prepare_group(group), model, Path(self.folder), wanted)
            counts["model_loads"] = self.cache.loads - loads
            counts["load_seconds"] = self.cache.seconds - load_seconds
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB
            for index, outcome in enumerate(outcomes):
                columns["key"].append(outcome.key)
                columns["error"].append(outcome.error or "")
                columns["seconds"].append(outcome.seconds)
                for name in COUNT_COLUMNS:
                    columns[name].append(counts[name] if index == 0 else 0)
                columns["peak_rss_mb"].append(peak)
        return columns


def _check_reachable(address: str, seconds: float = 5.0) -> None:
    """A HOST:PORT address must accept a connection now (Ray itself retries an absent one for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return  # "auto", "local", "ray://..." are Ray's to resolve
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as exc:
        raise DiffdiffError(f"cannot reach the Ray cluster {address!r}: {exc.strerror or exc}") from None


def connect(address: str) -> None:
    """Join the cluster at `address` ("auto": the one this machine belongs to), or start one here
    ("local")."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise DiffdiffError("--ray needs Ray: pip install 'diffdiff[ray]'") from None
    if ray.is_initialized():
        return
    _check_reachable(address)
    logging.getLogger("ray").setLevel(logging.ERROR)  # Ray Data's per-dataset INFO lines; our bar says it
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        ray.init(address=None if address == "local" else address, log_to_driver=False,
                 logging_level="ERROR", configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        reason = " ".join(str(exc).split())
        raise DiffdiffError(f"cannot reach the Ray cluster {address!r}: {reason}") from None


def run_on_ray(groups: list[list[Job]], pending: set[str], settings, start, finished, summary) -> None:
    """Run `groups` on Ray with `settings.workers` actors of `settings.threads` CPUs each; call `start` with
    the jobs put in flight and `finished(outcomes, counts)` as each group's rows stream back."""
    if not groups:
        return
    connect(settings.ray)
    import ray

    threads = settings.threads or CPU_THREADS_ON_RAY
    rows = []
    for group in groups:
        wanted = sorted(job.key for job in group if job.key in pending)
        rows.append({"jobs": json.dumps([job.to_dict() for job in group]), "wanted": json.dumps(wanted)})
    start([job for group in groups for job in group if job.key in pending])
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
    results = dataset.map_batches(
        GroupWorker, batch_size=1, compute=ray.data.ActorPoolStrategy(size=settings.workers),
        num_cpus=threads, fn_constructor_kwargs={"folder": str(settings.folder),
                                                 "load_options": settings.load_options, "threads": threads})
    peak = 0.0
    for row in results.iter_rows():
        outcome = Outcome(row["key"], row["error"] or None, float(row["seconds"]))
        finished([outcome], {name: float(row[name]) if name == "load_seconds" else int(row[name])
                             for name in COUNT_COLUMNS})
        peak = max(peak, float(row["peak_rss_mb"]))
    summary.worker_peak_rss_mb = round(peak)
