"""`diffdiff ui` as a newcomer starts it: the command serves the page with the demo model; bad flags are
one line."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from diffdiff.cli.main import main


@pytest.mark.parametrize("arguments, message", [
    (["--port", "0"], "--port must be in 1..65535"),
    (["--max-pixels", "10"], "--max-pixels must be at least"),
    (["--models-dir", "{tmp}/missing"], "does not exist"),
    (["--model", "{tmp}/notes.txt"], "is not a .safetensors file"),
])
def test_bad_flags_are_one_line(arguments, message, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a model")
    arguments = [a.replace("{tmp}", str(tmp_path)) for a in arguments]
    assert main(["ui", *arguments]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and error.count("\n") == 1


def test_diffdiff_ui_serves_the_page_and_warns_when_it_leaves_loopback(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "diffdiff", "ui", "--host", "0.0.0.0", "--port", str(port),
               "--output", str(tmp_path / "out")]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                              env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    try:
        page = None
        deadline = time.monotonic() + 180
        while page is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    page = response.read().decode("utf-8", "replace")
            except OSError:
                time.sleep(1)
        assert page is not None, f"the page did not come up (exit code {server.poll()})"
        assert "diffdiff" in page
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=30)
    assert "warning: --host 0.0.0.0 lets every machine" in errors
    assert "Traceback" not in errors
    assert (tmp_path / "out" / "inputs").is_dir()
