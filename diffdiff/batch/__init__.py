"""Batches of edits: a checked job list (manifest or folders), content-keyed outputs, an SQLite ledger, and
a local or Ray runner that never loses or repeats a job (see docs/design.md, "Batches")."""

from .jobs import Job
from .manifest import EXAMPLE, EXAMPLE_NOTE, Defaults, JobList, pair_folders, read_manifest
from .runner import BatchSettings, Summary, run_batch

__all__ = ["EXAMPLE", "EXAMPLE_NOTE", "BatchSettings", "Defaults", "Job", "JobList", "Summary",
           "pair_folders", "read_manifest", "run_batch"]
