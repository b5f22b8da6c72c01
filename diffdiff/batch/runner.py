"""Run a checked job list into an output folder so that nothing is lost and nothing is done twice: remove
the temporary files a killed run left, reconcile the ledger with the folder, plan the groups, run the
pending ones (locally or on Ray) with a progress bar, and record every job's end in the ledger."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import DiffdiffError
from ..models.device import resolve_device
from .jobs import Job
from .ledger import Ledger
from .work import (
    ModelCache,
    Outcome,
    default_group_size,
    execute_group,
    group_counts,
    plan_groups,
    prepare_group,
    written_by,
)


@dataclass
class BatchSettings:
    """How to run: the output `folder`, `group_size` (None: by device, see `default_group_size`), whether to
    `retry_failed`, the model loading keywords
    (`load_options`, for `diffdiff.models.load_model`), Ray's address (None: run here), its worker count
    and the CPU threads of each worker (None: torch's default here, 1 on Ray)."""

    folder: Path
    group_size: int | None = None
    retry_failed: bool = False
    load_options: dict = field(default_factory=dict)
    ray: str | None = None
    workers: int = 1
    threads: int | None = None
    quiet: bool = False


@dataclass
class Summary:
    """What a batch run did. `skipped`: done before; `failed_before`: failed before and not retried;
    `network_calls_saved`: network evaluations (of an image or a tile) that skipping idle steps and tiles
    saved, summed over the images."""

    jobs: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    failed_before: int = 0
    seconds: float = 0.0
    images_per_second: float = 0.0
    network_calls: int = 0
    network_calls_saved: int = 0
    model_loads: int = 0
    model_load_seconds: float = 0.0
    groups: int = 0
    worker_peak_rss_mb: int | None = None  # Ray: the largest resident memory of a worker
    failures: list = field(default_factory=list)  # "where: error"

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        before = f", {self.failed_before} failed before (--retry-failed runs them)" * bool(self.failed_before)
        return (f"{self.done} done, {self.skipped} skipped (done before), {self.failed} failed{before}; "
                f"{self.images_per_second:.3g} images/s; {self.network_calls_saved} network calls saved by "
                "skipping idle steps and tiles")


def remove_temporaries(folder: Path, jobs: list[Job]) -> int:
    """Delete the temporary files (".NAME.XXXXXXXX.png") a killed run left beside the outputs NAME."""
    names = {job.output for job in jobs}
    removed = 0
    for entry in folder.iterdir():
        name = entry.name
        if name.startswith(".") and name.endswith(".png") and name[1:-4].rpartition(".")[0] in names:
            entry.unlink(missing_ok=True)
            removed += 1
    return removed


def reconcile(jobs: list[Job], folder: Path, ledger: Ledger, retry_failed: bool,
              summary: Summary) -> set[str]:
    """The keys to run: not done (no output in the folder), or failed when `retry_failed`. An output found
    without a ledger entry (a run killed between the two) is recorded as done; a file in an output's place
    that another job wrote fails this one."""
    states = ledger.states()
    pending = set()
    for job in jobs:
        state = states.get(job.key, (None, None))[0]
        if (folder / job.output).exists():
            if state == "done" or written_by(folder / job.output, job.key):
                if state != "done":
                    ledger.mark_done(job)
                summary.skipped += 1
            else:
                summary.failed += 1
                summary.failures.append(f"{job.where}: {job.output} exists and is not this job's output")
        elif state == "failed" and not retry_failed:
            summary.failed_before += 1
        else:
            pending.add(job.key)
    return pending


def run_batch(jobs: list[Job], settings: BatchSettings) -> Summary:
    """Run the pending `jobs` into `settings.folder`; returns the summary (failures listed, not raised)."""
    folder = Path(settings.folder)
    folder.mkdir(parents=True, exist_ok=True)
    summary = Summary(jobs=len(jobs))
    where = {job.key: job.where for job in jobs}
    with Ledger(folder) as ledger:
        remove_temporaries(folder, jobs)
        pending = reconcile(jobs, folder, ledger, settings.retry_failed, summary)
        group_size = settings.group_size or default_group_size(resolve_device(settings.load_options.get(
            "device", "auto")))
        groups = [group for group in plan_groups(jobs, group_size)
                  if any(job.key in pending for job in group)]
        summary.groups = len(groups)
        from tqdm import tqdm

        started = time.perf_counter()
        with tqdm(total=len(pending), unit="job", disable=settings.quiet or not pending, file=sys.stderr,
                  dynamic_ncols=True) as bar:

            def finished(outcomes: list[Outcome], counts: dict) -> None:
                for outcome in outcomes:
                    ledger.finish(outcome.key, outcome.error, outcome.seconds)
                    if outcome.error:
                        summary.failed += 1
                        summary.failures.append(f"{where[outcome.key]}: {outcome.error}")
                    else:
                        summary.done += 1
                summary.network_calls += counts.get("network_calls", 0)
                summary.network_calls_saved += counts.get("calls_saved", 0)
                summary.model_loads += counts.get("model_loads", 0)  # Ray's workers (the local cache: below)
                summary.model_load_seconds += counts.get("load_seconds", 0.0)
                bar.update(len(outcomes))

            if settings.ray:
                from .ray_runner import run_on_ray

                run_on_ray(groups, pending, settings, ledger.start, finished, summary)
            elif groups:
                run_here(groups, pending, settings, ledger.start, finished, summary)
        summary.seconds = time.perf_counter() - started
    summary.images_per_second = summary.done / summary.seconds if summary.seconds > 0 else 0.0
    return summary


def run_here(groups: list[list[Job]], pending: set[str], settings: BatchSettings, start, finished,
             summary: Summary) -> None:
    """The local runner: one model at a time, a reader thread reading the next group while this one
    samples."""
    import torch

    from ..models import load_model

    if settings.threads:
        torch.set_num_threads(settings.threads)
    cache = ModelCache(lambda path: load_model(path, **settings.load_options))
    with ThreadPoolExecutor(1, thread_name_prefix="diffdiff-reader") as reader:
        upcoming = reader.submit(prepare_group, groups[0])
        for index, group in enumerate(groups):
            prepared = upcoming.result()
            if index + 1 < len(groups):
                upcoming = reader.submit(prepare_group, groups[index + 1])
            wanted = {job.key for job in group if job.key in pending}
            start([job for job in group if job.key in wanted])
            try:
                model = cache.get(group[0].model)
            except DiffdiffError as exc:
                finished([Outcome(key, str(exc), 0.0) for key in sorted(wanted)], group_counts({}))
                continue
            finished(*execute_group(prepared, model, settings.folder, wanted))
    summary.model_loads, summary.model_load_seconds = cache.loads, cache.seconds
