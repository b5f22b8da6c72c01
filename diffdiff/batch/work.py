"""What a batch worker does, the same in the local runner and in a Ray actor: plan the jobs into groups
that share one sampling run, read a group's inputs, run it, and write each wanted output atomically with
its job key in the PNG's settings. A group is a function of the job list alone, so a job's bytes do not
depend on which run (first, resumed, local or Ray) makes them."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DiffdiffError, one_line
from ..imageio import SETTINGS_CHUNK, read_png_text
from ..pipeline.editing import group_key, run_edits
from ..request import EditRequest
from ..request.requests import split_keywords
from .jobs import Job

GROUP_SIZE_ON_CPU = 1  # bench/batch.py, 2 cores: groups of 4 gained nothing measurable, and cost memory
GROUP_SIZE_ON_GPU = 4  # edits sampled together fill a GPU better (not measured here: no GPU was at hand)


def default_group_size(device) -> int:
    """Edits sampled together on `device` (a torch.device) when the user does not say."""
    return GROUP_SIZE_ON_CPU if device.type == "cpu" else GROUP_SIZE_ON_GPU


def plan_groups(jobs: list[Job], group_size: int) -> list[list[Job]]:
    """Jobs of one model and group key, in manifest order, cut into groups of at most `group_size`; groups
    of one model follow each other, so each model loads once."""
    buckets: dict[tuple, list[Job]] = {}
    for job in jobs:
        parts = split_keywords(job.options, *EditRequest.OPTION_GROUPS)
        loras = parts[-1].loras_for(job.prompt)  # the Prompting part's LoRAs: flags and prompt tags
        buckets.setdefault((job.model, group_key(job.size, *parts, loras)), []).append(job)
    groups = [bucket[start:start + group_size] for bucket in buckets.values()
              for start in range(0, len(bucket), group_size)]
    order = {model: index for index, model in enumerate(dict.fromkeys(job.model for job in jobs))}
    return sorted(groups, key=lambda group: order[group[0].model])  # stable: manifest order within a model


def written_by(path: Path, key: str) -> bool:
    """Whether the PNG at `path` is the output of the job with `key` (its settings carry the key)."""
    try:
        return json.loads(read_png_text(path).get(SETTINGS_CHUNK, "{}")).get("job") == key
    except (OSError, ValueError, DiffdiffError):
        return False


@dataclass
class Outcome:
    """A job's end in this run: `error` None when its output was written."""

    key: str
    error: str | None
    seconds: float


@dataclass
class Prepared:
    """A group's requests (read and checked) and the jobs whose inputs failed to read."""

    jobs: list[Job]
    requests: list[EditRequest]
    failures: list[Outcome] = field(default_factory=list)


def prepare_group(group: list[Job]) -> Prepared:
    """Read every job's image and map now (a reader thread does this for the next group while the current
    one samples)."""
    prepared = Prepared([], [])
    for job in group:
        try:
            prepared.requests.append(job.request())
            prepared.jobs.append(job)
        except Exception as exc:  # noqa: BLE001 - a bad input fails its job, not the batch
            prepared.failures.append(Outcome(job.key, one_line(exc), 0.0))
    return prepared


def group_counts(stats: dict) -> dict:
    """A group run's counts for the batch summary: its network calls, and the network evaluations (of the
    whole image or of a tile) that skipping idle steps and tiles saved, summed over the group's images."""
    saved = stats.get("tile_evaluations_without_skip", 0) - stats.get("tile_evaluations", 0)
    images = stats.get("group_items", 0)
    return {"network_calls": stats.get("network_calls", 0), "calls_saved": saved * images}


def execute_group(prepared: Prepared, model, folder: Path, wanted: set[str]) -> tuple[list[Outcome], dict]:
    """Sample the prepared group together and write the outputs of the jobs in `wanted` (the others of the
    group are done already and only keep the group whole). Returns the wanted jobs' outcomes and the run's
    `group_counts`."""
    outcomes = [failure for failure in prepared.failures if failure.key in wanted]
    if not prepared.requests:
        return outcomes, group_counts({})
    started = time.perf_counter()
    try:
        results = run_edits(prepared.requests, model)
    except Exception as exc:  # noqa: BLE001 - the group's jobs fail with the reason; the batch goes on
        error = one_line(exc)
        failed = [Outcome(job.key, error, 0.0) for job in prepared.jobs if job.key in wanted]
        return outcomes + failed, group_counts({})
    seconds = (time.perf_counter() - started) / len(results)
    for job, result in zip(prepared.jobs, results):
        if job.key not in wanted:
            continue
        result.settings["job"] = job.key
        try:
            result.save(folder / job.output)
            outcomes.append(Outcome(job.key, None, seconds))
        except Exception as exc:  # noqa: BLE001
            # a worker of a killed run may have written it meanwhile: the same job's output is success
            done = written_by(folder / job.output, job.key)
            outcomes.append(Outcome(job.key, None if done else one_line(exc), seconds))
    return outcomes, group_counts(results[0].stats)


class ModelCache:
    """Loads a model on first use and keeps the last one (groups of one model come together); a model that
    failed to load fails again at once, with the same message."""

    def __init__(self, load):
        self.load = load  # path -> LoadedModel
        self.path, self.model, self.error, self.loads, self.seconds = None, None, None, 0, 0.0

    def get(self, path: str):
        if path != self.path:
            self.model, self.error, self.path = None, None, path
            started = time.perf_counter()
            try:
                self.model = self.load(path)
            except Exception as exc:  # noqa: BLE001 - kept, and raised for each group of this model
                self.error = DiffdiffError(f"model {path}: {one_line(exc)}")
            self.loads += 1
            self.seconds += time.perf_counter() - started
        if self.error is not None:
            raise self.error
        return self.model
