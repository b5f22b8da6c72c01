"""make-tiny-model interrupted or refused: nothing left behind, the true target named in errors."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from diffdiff.cli.main import build_parser, main
from diffdiff.errors import DiffdiffError
from diffdiff.models import families, tiny

ROOT = Path(__file__).resolve().parents[1]

# Runs the CLI in a child process whose writing step sends SIGTERM to itself halfway through.
SELF_TERMINATING = textwrap.dedent("""
    import os, signal, sys, time
    import safetensors.torch
    from diffdiff.models import tiny
    from diffdiff.cli.main import main

    def die(target):
        target.write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler runs at the next bytecode; without one the process is gone

    tiny._write_folder = lambda folder, family, inpainting=False: die(folder / "half.json")
    safetensors.torch.save_file = lambda state, path, metadata=None: die(__import__("pathlib").Path(path))
    sys.exit(main(["make-tiny-model", *sys.argv[1:]]))
""")


def _run_terminated(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", SELF_TERMINATING, *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)


def test_sigterm_while_writing_the_folder_leaves_nothing(tmp_path):
    done = _run_terminated(tmp_path / "model")
    assert done.returncode == 130, done.stderr
    assert done.stderr == "error: interrupted\n"
    assert list(tmp_path.iterdir()) == []  # no hidden staging folder


def test_sigterm_while_writing_the_single_file_leaves_nothing(tmp_path):
    done = _run_terminated(tmp_path / "out", "--single-file")
    assert done.returncode == 130, done.stderr
    assert list(tmp_path.iterdir()) == []  # neither the temp file nor the folder made for it


def test_an_interrupted_single_file_keeps_a_folder_that_was_there(tmp_path, monkeypatch):
    def interrupted(family, inpainting=False):
        raise KeyboardInterrupt

    monkeypatch.setattr(tiny, "single_file_state", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tiny.make_tiny_model(tmp_path / "new", "sd1", single_file=True)
    assert not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()
    with pytest.raises(KeyboardInterrupt):
        tiny.make_tiny_model(tmp_path / "kept", "sd1", single_file=True)
    assert (tmp_path / "kept").is_dir()


def test_a_read_only_parent_names_the_target_not_a_temp_folder(tmp_path, monkeypatch, capsys):
    target = tmp_path / "model"

    def denied(prefix="", dir=None, **kwargs):  # what mkdtemp raises in a read-only folder
        raise PermissionError(13, "Permission denied", os.path.join(dir, prefix + "abc123"))

    monkeypatch.setattr(tiny.tempfile, "mkdtemp", denied)
    assert main(["make-tiny-model", str(target)]) == 2
    assert capsys.readouterr().err == f"error: cannot write {target}: permission denied\n"
    real_mkdir = Path.mkdir

    def no_mkdir(self, *args, **kwargs):
        if self == target:
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", no_mkdir)
    with pytest.raises(DiffdiffError, match=rf"^cannot write {target}: permission denied$"):
        tiny.make_tiny_model(target, "sd1", single_file=True)


def test_a_safetensors_name_without_single_file_is_refused(tmp_path, capsys):
    target = tmp_path / "y.safetensors"
    assert main(["make-tiny-model", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "add --single-file (single_file=True), or give a folder name" in err
    assert err.count("\n") == 1 and not target.exists()


def test_single_file_into_a_path_that_is_a_file_fails_before_building(tmp_path, monkeypatch):
    existing = tmp_path / "notes.txt"
    existing.write_text("x")
    monkeypatch.setattr(tiny, "single_file_state",
                        lambda family, inpainting=False: pytest.fail("built before the check"))
    with pytest.raises(DiffdiffError, match=r"notes.txt exists and is not a folder"):
        tiny.make_tiny_model(existing, "sd1", single_file=True)


def test_family_choices_come_from_the_one_list():
    parser = build_parser()
    verbs = next(a for a in parser._actions if a.dest == "verb")
    family = next(a for a in verbs.choices["make-tiny-model"]._actions if a.dest == "family")
    assert family.choices is families.FAMILIES
