"""bench/quality.py: the quick run on the shipped demo model writes every section with finite figures and no
drift, and its measurements read what they claim on images built to show it."""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("vae_psnr", "vae_colour_shift", "adherence", "seams", "drift", "prompt_following")


def _measures():
    spec = importlib.util.spec_from_file_location("quality_measures", ROOT / "bench" / "quality_measures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _leaves(value, path="$"):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def test_quick_run_writes_every_section_with_finite_figures_and_no_drift(tmp_path):
    out = tmp_path / "quality.json"  # the model is the default: the shipped demo model
    command = [sys.executable, str(ROOT / "bench" / "quality.py"), "--quick", "--json", str(out)]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    report = json.loads(out.read_text())
    for key in ("date", "machine", "settings", "table", *SECTIONS):
        assert key in report, key
    for section in SECTIONS:
        numbers = 0
        for path, value in _leaves(report[section], section):
            assert value is not None, f"{path} is not a finite number"
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                assert math.isfinite(value), path
                numbers += 1
        assert numbers, section
    assert report["drift"]["changed"] == 0
    assert report["drift"]["changed_per_round"] == [0] * report["drift"]["rounds"]
    assert len(report["prompt_following"]["pairs"]) >= 6
    assert all(math.isfinite(row["value"]) for row in report["table"])
    assert "drift" in run.stdout and "met" in run.stdout


def test_border_ratio_sees_a_seam_and_not_a_smooth_ramp():
    qm = _measures()
    rng = np.random.default_rng(0)
    texture = rng.normal(128, 6, (64, 64, 3))
    stepped = texture.copy()
    stepped[:, 32:] += 40
    assert qm.border_ratio(np.clip(stepped, 0, 255).astype(np.uint8), [32], []) > 5
    assert 0.7 < qm.border_ratio(np.clip(texture, 0, 255).astype(np.uint8), [32], [16]) < 1.4


def test_distinct_levels_counts_plateaus():
    qm = _measures()
    map_values = np.linspace(0, 1, 256)
    staircase = np.floor(map_values * 3.999)  # four plateaus
    assert qm.distinct_levels(map_values, staircase, 32)[0] == 4
    assert qm.distinct_levels(map_values, map_values * 10, 32)[0] == 32


def test_psnr_and_delta_e():
    qm = _measures()
    image = np.full((16, 16, 3), 100, np.uint8)
    assert qm.psnr(image, image) == 100.0
    assert abs(qm.psnr(image, image + 1) - 10 * math.log10(255**2)) < 1e-9
    white, black = np.full((2, 2, 3), 255, np.uint8), np.zeros((2, 2, 3), np.uint8)
    assert np.allclose(qm.delta_e76(white, black), 100, atol=0.1)  # L* 100 vs 0, no chroma
