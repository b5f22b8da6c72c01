"""The CLI entry: usage mistakes and failures end in exactly one `error:` line on stderr and exit code 2."""

import pytest

from diffdiff.cli.main import main


@pytest.mark.parametrize("argv", [
    ["frobnicate"],
    ["map", "frobnicate"],
    ["edit", "x.png"],
    ["edit", "x.png", "--map", "m.png", "--prompt", "p", "--model", "m", "-o", "o.png", "--steps", "many"],
])
def test_usage_errors_are_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")


def test_no_verb_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "VERB" in capsys.readouterr().err


def test_help_exits_0_and_lists_every_verb(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in ("edit", "generate", "samplers", "map", "make-tiny-model", "upscale"):
        assert verb in out


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_is_accepted_before_or_after_the_verb(where, capsys, tmp_path):
    # `diffdiff edit ... --debug` used to be a usage error ("unrecognized arguments: --debug")
    argv = ["edit", str(tmp_path / "none.png"), "--map", "0.5", "--prompt", "p", "--model", "m",
            "-o", str(tmp_path / "o.png")]
    argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.splitlines()[-1] == f"error: cannot read {tmp_path / 'none.png'}: no such file"
