"""Several edits in one sampling run (`run_edits`): each item keeps its own image, map, prompt and seed —
map-0 pixels stay the input's bytes, a group's items differ by prompt and seed as single runs do — and
requests of another size or option are refused; the planner groups by model, size and options."""

import numpy as np
import pytest
from PIL import Image

from diffdiff.batch.jobs import Job
from diffdiff.batch.work import plan_groups
from diffdiff.errors import DiffdiffError
from diffdiff.pipeline.editing import run_edit, run_edits
from diffdiff.request import EditRequest


def _request(seed, prompt="a red roof", side=64, **options):
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
    strength = np.zeros((side, side), np.float32)
    strength[:, side // 2:] = rng.uniform(0.5, 1.0)
    return EditRequest.build(image, strength, prompt, steps=4, seed=seed, **options)


def test_each_item_of_a_group_keeps_its_own_inputs(tiny_sd1):
    requests = [_request(1, "a red roof"), _request(2, "a night sky"), _request(1, "a night sky")]
    results = run_edits(requests, tiny_sd1)
    outputs = [np.asarray(result.images[0]) for result in results]
    for request, output in zip(requests, outputs):
        kept = request.strength.values == 0
        assert (output[kept] == request.image.pixels[kept]).all()
        assert not (output[~kept] == request.image.pixels[~kept]).all()
    assert np.abs(outputs[0].astype(int) - outputs[2]).max() > 8  # same image and seed, other prompt
    alone = np.asarray(run_edit(requests[1], tiny_sd1).images[0])
    assert np.abs(alone.astype(int) - outputs[1]).max() <= 2  # float rounding of another batch shape only
    assert [r.stats["group_items"] for r in results] == [3, 3, 3]
    assert [r.settings["seed"] for r in results] == [1, 2, 1]


def test_requests_of_other_sizes_or_options_are_not_run_together(tiny_sd1):
    with pytest.raises(DiffdiffError, match="share their size and options"):
        run_edits([_request(1), _request(2, side=72)], tiny_sd1)
    with pytest.raises(DiffdiffError, match="share their size and options"):
        run_edits([_request(1), _request(2, cfg=3.0)], tiny_sd1)


def _job(index, model="m", size=(64, 64), **options):
    options = {"seed": index, **options}
    return Job(f"line {index}", "i.png", 0.5, "p", "", options, model, size, f"{index}.png", f"key{index}")


def test_groups_follow_model_size_and_options_in_manifest_order():
    jobs = [_job(0), _job(1, model="n"), _job(2), _job(3, size=(64, 80)), _job(4, steps=9), _job(5), _job(6),
            _job(7)]
    groups = [[job.where.split()[1] for job in group] for group in plan_groups(jobs, group_size=3)]
    assert groups == [["0", "2", "5"], ["6", "7"], ["3"], ["4"], ["1"]]
    spot = [_job(0, blend="spot"), _job(1, blend="spot"), _job(2, blend="spot", seed=0)]
    assert [len(group) for group in plan_groups(spot, group_size=4)] == [2, 1]  # spot: by seed
