"""A page's run without a browser: progress and cancel of a job, the live preview's projection, and the
Studio's edits on the demo model (map-0 pixels exact, the map it used saved, cancel writes nothing)."""

import threading
import time

import numpy as np
import pytest
from PIL import Image

from diffdiff.demo import DEMO_MODEL
from diffdiff.errors import DiffdiffError
from diffdiff.ui.canvas import map_to_data_url
from diffdiff.ui.handlers import Studio
from diffdiff.ui.jobs import EditJob, JobCancelled, Progress
from diffdiff.ui.latent_preview import LatentProjection, block_means, fit_pixels
from diffdiff.ui.models import ModelShelf
from diffdiff.ui.settings import SETTINGS


def _steps(count, seen, *, pause=0.0, cost=None, fail_at=None):
    def run(callback):
        for i in range(count):
            if fail_at == i:
                raise DiffdiffError("the run failed here")
            seen.append(i)
            info = {"i": i, "total_steps": count}
            if cost is not None:
                info.update(step_cost=cost[i], total_cost=sum(cost))
            callback(info)
            time.sleep(pause)
        return "the result"

    return run


def test_a_job_reports_each_step_then_its_result():
    seen = []
    updates = list(EditJob(_steps(5, seen, pause=0.01), model=None).updates())
    assert updates[-1] == "the result" and seen == [0, 1, 2, 3, 4]
    progress = updates[:-1]
    assert progress[0].phase == "preparing" and all(isinstance(p, Progress) for p in progress)
    assert [p.step for p in progress[1:]] == [1, 2, 3, 4, 5]
    assert [round(p.fraction, 6) for p in progress[1:]] == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert progress[1].eta is None and progress[3].eta is not None and progress[3].eta > 0
    assert progress[-1].phase == "finishing" and progress[2].text().startswith("step 2/5 · 40 %")


def test_a_jobs_progress_follows_the_work_each_step_costs():
    updates = list(EditJob(_steps(4, [], cost=[0, 0, 1, 3]), model=None).updates())
    assert [round(p.fraction, 6) for p in updates[1:-1]] == [0.0, 0.0, 0.25, 1.0]


def test_cancel_stops_a_job_at_its_next_step():
    seen = []
    job = EditJob(_steps(200, seen, pause=0.01), model=None)
    with pytest.raises(JobCancelled):
        for update in job.updates():
            if isinstance(update, Progress) and update.step == 3:
                job.cancel()
    assert 3 <= len(seen) <= 4


def test_a_failed_run_raises_its_error_from_the_updates():
    with pytest.raises(DiffdiffError, match="failed here"):
        list(EditJob(_steps(5, [], fail_at=2), model=None).updates())


@pytest.fixture(scope="module")
def demo_model():
    from diffdiff.models import load_model

    return load_model(DEMO_MODEL, device="cpu")


@pytest.fixture(scope="module")
def landscape():
    from diffdiff.demo.scenes import random_attributes, render  # the demo model's own kind of picture

    return Image.fromarray(render(random_attributes(np.random.default_rng(7)), 256, seed=7).pixels)


def test_the_preview_projection_fitted_on_a_small_copy_predicts_block_colours(demo_model, landscape):
    projection = LatentProjection.fit(demo_model, landscape.resize((128, 128)))
    pixels = np.asarray(landscape)
    latent = demo_model.vae_codec.encode(pixels)[0]
    truth = block_means(pixels, 8)
    error = np.abs(projection.colours(latent) / 255.0 - truth).mean()
    baseline = np.abs(truth - truth.mean(axis=(0, 1))).mean()  # one mean colour for every block
    assert error < 0.6 * baseline
    assert projection.image(latent).size == (256, 256)
    assert fit_pixels(Image.new("RGB", (1000, 300)), 8).shape == (72, 256, 3)


def test_a_job_with_a_preview_image_sends_previews(demo_model, landscape):
    latent = demo_model.vae_codec.encode(np.asarray(landscape))

    def run(callback):
        for i in range(4):
            callback({"i": i, "total_steps": 4, "denoised": latent})
        return "done"

    updates = list(EditJob(run, demo_model, preview_image=landscape, preview_every=2).updates())
    previews = [u.preview for u in updates[:-1] if u.preview is not None]
    assert len(previews) == 2 and previews[0].size == (256, 256)


@pytest.fixture
def studio(demo_model, tmp_path):
    return Studio(ModelShelf(DEMO_MODEL, None, loader=lambda path, **options: demo_model), tmp_path / "out")


def _settings(**changes):
    return {**{s.keyword: s.default for s in SETTINGS}, **changes}


def _upload(studio, tmp_path, landscape, size=(96, 64)):
    path = tmp_path / "in.png"
    landscape.resize(size).save(path)
    return studio.accept_upload(path)


def test_the_studio_edits_only_where_the_map_is_and_keeps_the_map_it_used(studio, tmp_path, landscape):
    stored = _upload(studio, tmp_path, landscape)
    strength = np.zeros((64, 96), np.float32)
    strength[:32, 40:] = 102 / 255
    updates = list(studio.run("session", stored, map_to_data_url(strength), "a night sky", "", None,
                              _settings(steps=4, batch=2)))
    outcome = updates[-1]
    assert len(outcome.paths) == 2 and outcome.model == DEMO_MODEL.name
    sent = np.asarray(Image.open(outcome.map_path))
    assert np.array_equal(sent, np.round(strength * 255).astype(np.uint8))
    before = np.asarray(Image.open(stored))
    for path in outcome.paths:
        after = np.asarray(Image.open(path).convert("RGB"))
        assert np.array_equal(after[strength == 0], before[strength == 0])
        assert not np.array_equal(after[strength > 0], before[strength > 0])
    assert "a night sky" in Image.open(outcome.paths[0]).text["parameters"]


def test_cancelling_a_studio_run_writes_nothing(studio, tmp_path, landscape):
    stored = _upload(studio, tmp_path, landscape)
    strength = np.ones((64, 96), np.float32)
    written = set(studio.output.glob("*.png"))
    runs = studio.run("session", stored, map_to_data_url(strength), "x", "", None, _settings(steps=400))
    with pytest.raises(JobCancelled):
        for update in runs:
            if update.step == 2:
                threading.Thread(target=studio.cancel, args=("session",)).start()
    assert set(studio.output.glob("*.png")) == written
    assert studio.cancel("session") is None  # nothing runs any more


def test_a_run_cancelled_while_it_waits_never_starts_and_the_next_one_runs(studio, tmp_path, landscape):
    stored = _upload(studio, tmp_path, landscape)
    strength = map_to_data_url(np.ones((64, 96), np.float32))
    written = set(studio.output.glob("*.png"))
    assert studio.cancel("s") is None  # nothing runs or waits
    studio.submitted("s")  # the page queued a run behind another session's
    assert studio.cancel("s") == "waiting"
    with pytest.raises(JobCancelled):
        next(studio.run("s", stored, strength, "x", "", None, _settings(steps=2)))
    assert set(studio.output.glob("*.png")) == written
    studio.submitted("s")
    updates = list(studio.run("s", stored, strength, "x", "", None, _settings(steps=2)))
    assert set(studio.output.glob("*.png")) > written and updates
    assert studio.cancel("s") is None


def test_the_studio_takes_only_images_it_stored(studio, tmp_path, landscape):
    strength = map_to_data_url(np.ones((64, 96), np.float32))
    outside = tmp_path / "elsewhere.png"
    landscape.save(outside)
    for path in (str(outside), "/etc/passwd", "", None):
        with pytest.raises(DiffdiffError, match="upload"):
            list(studio.run("s", path, strength, "x", "", None, _settings()))


def test_the_http_edit_takes_files(studio, tmp_path, landscape):
    image = tmp_path / "photo.png"
    landscape.resize((96, 64)).save(image)
    strength = tmp_path / "map.png"
    grey = np.zeros((32, 48), np.uint8)  # half size: resized to the image, as everywhere
    grey[:, 24:] = 255
    Image.fromarray(grey).save(strength)
    outcome = studio.edit_files(image, strength, "snow", settings={"steps": 3})
    after = np.asarray(Image.open(outcome.paths[0]).convert("RGB"))
    before = np.asarray(Image.open(image).convert("RGB"))
    assert np.array_equal(after[:, :40], before[:, :40]) and not np.array_equal(after, before)
    with pytest.raises(DiffdiffError, match="as a map"):
        studio.edit_files(image, image.with_name("missing.png"), "snow")
