"""The README's demo inputs through the real CLI: the black part of a map is kept bit for bit."""

from pathlib import Path

import numpy as np
from PIL import Image

from diffdiff.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_demo_keeps_the_black_third_and_changes_the_white_edge(tmp_path):
    from diffdiff.models import make_tiny_model

    model = make_tiny_model(tmp_path / "tiny", "sd1", single_file=True)
    out = tmp_path / "demo.png"
    code = main(["edit", str(EXAMPLES / "demo.png"), "--map", str(EXAMPLES / "gradient-map.png"),
                 "--prompt", "a watercolour painting", "--model", str(model), "--steps", "3", "--seed", "1",
                 "-o", str(out), "--quiet"])
    assert code == 0
    source = np.asarray(Image.open(EXAMPLES / "demo.png").convert("RGB"))
    result = np.asarray(Image.open(out).convert("RGB"))
    strength = np.asarray(Image.open(EXAMPLES / "gradient-map.png").convert("L"))
    assert result.shape == source.shape
    black = strength == 0
    assert black[:, : source.shape[1] // 3].all()
    assert np.array_equal(result[black], source[black])
    white_edge = np.s_[:, -32:]
    assert np.abs(result[white_edge].astype(int) - source[white_edge].astype(int)).mean() > 5
