"""VQGAN+CLIP generation: the taming loader, the optimisation (with the toy CLIP and the tiny VQGAN),
the PNG it writes, the job runner and its HTTP API, and the image found again by a search."""

from __future__ import annotations

import io
import json
import sys
import time
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from generation.optimize import GenerationCancelled, GenerationOptions, generate_image
from generation.output import PARAMS_KEY, PROMPT_KEY, read_generation_info, save_generated
from generation.vqgan import VQGAN, VQGANConfig, VQGANConfigError, load_default_vqgan, load_vqgan
from tests.conftest import index_library, make_settings

PROMPT = "a red circle on a blue background"
OTHER_PROMPT = "a yellow star on a white background"


@pytest.fixture(scope="module")
def tiny_vqgan() -> VQGAN:
    return load_default_vqgan("cpu")


def similarity(encoder, image: Image.Image, text: str) -> float:
    return float(encoder.encode_images([image])[0] @ encoder.encode_texts([text])[0])


def test_public_api_and_prompt_syntax():
    import generation
    from generation.prompts import WeightedPrompt, parse_prompts

    assert all(getattr(generation, name) is not None for name in generation.__all__)
    parts = parse_prompts("sunset: golden hour | a red circle:2|blue:-0.5")
    assert parts == [WeightedPrompt("sunset: golden hour"), WeightedPrompt("a red circle", 2.0),
                     WeightedPrompt("blue", -0.5)]  # fmt: skip
    for bad in ("", " | ", "a:-1"):
        with pytest.raises(ValueError):
            parse_prompts(bad)


# -- the taming-transformers format -----------------------------------------------------------------
SMALL_DDCONFIG = {
    "double_z": False, "z_channels": 32, "resolution": 32, "in_channels": 3, "out_ch": 3, "ch": 32,
    "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [16], "dropout": 0.0,
}  # fmt: skip


def write_taming_checkpoint(tmp_path: Path, extra: dict | None = None) -> tuple[Path, Path, dict]:
    """A config laid out exactly like vqgan_imagenet_f16_16384.yaml, and a lightning-style .ckpt."""
    config = {
        "model": {
            "base_learning_rate": 4.5e-06,
            "target": "taming.models.vqgan.VQModel",
            "params": {
                "embed_dim": 16,
                "n_embed": 64,
                "monitor": "val/rec_loss",
                "ddconfig": SMALL_DDCONFIG,
                "lossconfig": {
                    "target": "taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator",
                    "params": {"disc_conditional": False, "disc_in_channels": 3, "disc_start": 250001,
                               "disc_weight": 0.8, "codebook_weight": 1.0},
                },
            },
        }
    }  # fmt: skip
    cfg_path = tmp_path / "model.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    torch.manual_seed(123)
    state = VQGAN(VQGANConfig.from_dict(config)).state_dict()
    state["loss.discriminator.main.0.weight"] = torch.randn(64, 3, 4, 4)
    state["loss.discriminator.main.0.bias"] = torch.randn(64)
    state["loss.perceptual_loss.net.slice1.0.weight"] = torch.randn(64, 3, 3, 3)
    ckpt_path = tmp_path / "last.ckpt"
    torch.save({"epoch": 3, "global_step": 1000, "state_dict": state, **(extra or {})}, ckpt_path)
    return cfg_path, ckpt_path, state


def test_taming_checkpoint_loads_and_decodes(tmp_path):
    cfg_path, ckpt_path, state = write_taming_checkpoint(tmp_path)
    model = load_vqgan(cfg_path, ckpt_path)
    # Every model key came from the file, under taming's own names; the loss.* keys were dropped.
    own = model.state_dict()
    assert set(own) == {k for k in state if not k.startswith("loss.")}
    assert "quantize.embedding.weight" in own and "decoder.up.1.upsample.conv.weight" in own
    assert "encoder.down.0.downsample.conv.weight" in own and "decoder.mid.attn_1.proj_out.bias" in own
    assert all(torch.equal(own[k], state[k]) for k in own)
    assert model.downscale == 2
    latent = model.codes_to_latent(torch.randint(64, (1, 3, 5)))
    with torch.no_grad():
        assert model.decode(latent).shape == (1, 3, 6, 10)
        assert model.encode(torch.zeros(2, 3, 32, 48)).shape == (2, 16, 16, 24)


def test_lightning_checkpoint_loads_without_lightning(tmp_path, monkeypatch):
    """The published .ckpt files pickle pytorch-lightning callback objects; we must not need lightning."""
    names = ["pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.mc"]
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))

    class ModelCheckpoint:
        def __init__(self) -> None:
            self.best_model_score = np.float64(0.25)

    ModelCheckpoint.__module__, ModelCheckpoint.__qualname__ = names[-1], "ModelCheckpoint"
    sys.modules[names[-1]].ModelCheckpoint = ModelCheckpoint
    extra = {"callbacks": {ModelCheckpoint: {"best": torch.tensor(1.0)}}, "checkpoint": ModelCheckpoint()}
    cfg_path, ckpt_path, state = write_taming_checkpoint(tmp_path, extra)
    for name in names:
        monkeypatch.delitem(sys.modules, name)
    model = load_vqgan(cfg_path, ckpt_path)
    assert torch.equal(model.codebook, state["quantize.embedding.weight"])


def test_mismatched_checkpoint_is_refused_with_a_reason(tmp_path):
    cfg_path, ckpt_path, state = write_taming_checkpoint(tmp_path)
    del state["decoder.conv_out.weight"]
    torch.save({"state_dict": state}, ckpt_path)
    with pytest.raises(VQGANConfigError, match="decoder.conv_out.weight"):
        load_vqgan(cfg_path, ckpt_path)


def test_real_size_f16_config_builds():
    """The vqgan_imagenet_f16_16384 architecture, as the benchmark uses it (random weights)."""
    from bench.generation import F16_16384

    model = VQGAN(VQGANConfig.from_dict(F16_16384))
    assert model.downscale == 16 and tuple(model.codebook.shape) == (16384, 256)
    assert sum(p.numel() for p in model.parameters()) > 70_000_000


# -- the optimisation ---------------------------------------------------------------------------------
def test_generation_moves_towards_its_prompt(toy_encoder, tiny_vqgan):
    options = GenerationOptions(width=64, height=64, steps=32, seed=3, cutouts=8, lr=0.2, preview_every=1)
    frames: list[Image.Image] = []
    image = generate_image(toy_encoder, tiny_vqgan, PROMPT, options, lambda s, n, p: frames.append(p))
    assert image.size == (64, 64) and len(frames) == 32
    start = similarity(toy_encoder, frames[0], PROMPT)
    end = similarity(toy_encoder, image, PROMPT)
    assert end > start + 0.1, (start, end)
    assert end > similarity(toy_encoder, image, OTHER_PROMPT) + 0.1


def test_generation_is_deterministic_for_a_seed(toy_encoder, tiny_vqgan):
    options = GenerationOptions(width=32, height=32, steps=4, seed=7, cutouts=4)
    first = np.asarray(generate_image(toy_encoder, tiny_vqgan, PROMPT, options))
    again = np.asarray(generate_image(toy_encoder, tiny_vqgan, PROMPT, options))
    other = np.asarray(generate_image(toy_encoder, tiny_vqgan, PROMPT, options.__class__(
        width=32, height=32, steps=4, seed=8, cutouts=4)))  # fmt: skip
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_negative_weight_and_stop(toy_encoder, tiny_vqgan):
    options = GenerationOptions(width=32, height=32, steps=50, seed=1, cutouts=4)
    calls = []
    with pytest.raises(GenerationCancelled):
        generate_image(toy_encoder, tiny_vqgan, f"{PROMPT}|{OTHER_PROMPT}:-0.5", options,
                       lambda s, n, p: calls.append(s), should_stop=lambda: len(calls) >= 2)  # fmt: skip
    assert calls == [1, 2]


def test_init_image_is_the_starting_point(toy_encoder, tiny_vqgan, tmp_path):
    from indexer.toyworld import Spec, render

    init = tmp_path / "init.png"
    render(Spec("green", "square", "white background"), (64, 64), np.random.default_rng(0)).save(init)
    options = GenerationOptions(width=64, height=64, steps=1, cutouts=2, lr=1e-4, init_image=str(init))
    image = generate_image(toy_encoder, tiny_vqgan, "a green square", options)
    # One tiny step from the encoded init image: still close to it (the tiny VQGAN is lossy, so loosely).
    with Image.open(init) as im:
        error = np.abs(np.asarray(image, dtype=float) - np.asarray(im, dtype=float)).mean()
    assert error < 40, error


# -- the PNG ------------------------------------------------------------------------------------------
def test_png_carries_prompt_and_params(tmp_path):
    prompt = "un cercle rouge · 赤い円"
    image = Image.new("RGB", (16, 16), "red")
    path = save_generated(image, prompt, {"steps": 3, "seed": 1}, tmp_path / "gen")
    assert path.parent == tmp_path / "gen" and path.suffix == ".png"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no partial file left behind
    with Image.open(path) as im:
        assert im.text[PROMPT_KEY] == prompt and im.text["Description"] == prompt
        assert json.loads(im.text[PARAMS_KEY]) == {"steps": 3, "seed": 1}
        assert "photoseek" in im.text["Software"]
    assert read_generation_info(path) == (prompt, {"steps": 3, "seed": 1})


def test_cli_writes_into_the_library(tmp_path, toy_encoder):
    from click.testing import CliRunner

    from generation.cli import generate

    settings = make_settings(tmp_path / "data")
    args = [PROMPT, "--size", "40x36", "--steps", "2", "--cutouts", "2", "--seed", "5"]
    args += ["--preview-every", "1"]
    result = CliRunner().invoke(generate, args, obj=settings)
    assert result.exit_code == 0, result.output
    (out,) = settings.layout.generated.glob("*.png")
    assert str(out) in result.output
    prompt, params = read_generation_info(out)
    assert prompt == PROMPT and params["seed"] == 5 and params["clip"] == toy_encoder.identity.label
    with Image.open(out) as im:
        assert im.size == (params["output_width"], params["output_height"]) == (40, 36)
    assert len(list((settings.data_dir / "previews").glob("*.png"))) == 2

    bad = CliRunner().invoke(generate, [PROMPT, "--vqgan", "/nope.yaml,/nope.ckpt"], obj=settings)
    assert bad.exit_code != 0 and "does not exist" in bad.output


def test_generated_image_is_found_by_a_search_for_it(tmp_path, toy_encoder, tiny_vqgan):
    from indexer.toyworld import Spec, render

    settings = make_settings(tmp_path / "data")
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    others = [("yellow", "star", "grey background"), ("green", "square", "white background"),
              ("purple", "triangle", "green background")]  # fmt: skip
    for i, spec in enumerate(Spec(*o) for o in others):
        render(spec, (96, 96), rng).save(photos / f"photo{i}.png")
    options = GenerationOptions(width=64, height=64, steps=15, seed=2, cutouts=4, lr=0.2)
    image = generate_image(toy_encoder, tiny_vqgan, PROMPT, options)
    made = save_generated(image, PROMPT, options.to_params(), settings.layout.generated)

    indexed_lib, summary = index_library(settings.data_dir, [photos, settings.layout.generated], toy_encoder)

    assert summary.new == 4, summary.text()
    from indexer.query import parse_query

    hits = indexed_lib.searcher().search(parse_query(PROMPT), limit=4)
    assert hits[0].path == str(made.resolve())
    assert hits[0].caption == PROMPT and hits[0].generated


# -- jobs and their API -------------------------------------------------------------------------------
def wait_for(predicate, timeout: float = 60.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


@pytest.fixture
def runner(tmp_path, toy_encoder):
    from generation.jobs import JobRunner
    from indexer.catalog import open_catalog

    runner = JobRunner(open_catalog(tmp_path / "data"), tmp_path / "data" / "generated", lambda: toy_encoder)
    yield runner.start()
    runner.close()


def test_job_runs_reports_progress_and_writes_its_image(runner):
    job_id = runner.submit(PROMPT, {"size": "32x32", "steps": 12, "cutouts": 2, "preview_every": 1})
    seen = set()

    def finished():
        job = runner.get(job_id)
        seen.add(job["progress"])
        return job if job["status"] in ("done", "failed") else None

    job = wait_for(finished)
    assert job["status"] == "done", job["error"]
    assert job["progress"] == 1.0 and any(0 < p < 1 for p in seen), seen
    assert read_generation_info(Path(job["result_path"]))[0] == PROMPT
    assert runner.latest_preview(job_id).startswith(b"\x89PNG")
    assert [j["id"] for j in runner.list_jobs()[0]] == [job_id]


def test_the_vqgan_lives_in_the_model_cache_and_goes_when_idle(tmp_path, toy_encoder):
    from generation.jobs import JobRunner
    from indexer.catalog import open_catalog
    from indexer.models import ModelCache

    now = [0.0]
    models = ModelCache(clock=lambda: now[0])
    catalog = open_catalog(tmp_path / "data")
    runner = JobRunner(catalog, tmp_path / "gen", lambda: toy_encoder, idle_unload_s=60, models=models)
    runner.start()
    try:
        job_id = runner.submit(PROMPT, {"size": "32x32", "steps": 2, "cutouts": 2})
        assert wait_for(lambda: runner.get(job_id)["status"] in ("done", "failed") and runner.get(job_id))
        key = "vqgan:tiny@cpu"
        assert models.loaded(key) and models.loads[key] == 1
        now[0] = 59.0
        assert models.unload_idle() == [] and models.loaded(key)
        now[0] = 61.0
        assert models.unload_idle() == [key] and not models.loaded(key)  # searchd's follower does this
    finally:
        runner.close()


def test_jobs_can_be_cancelled_queued_or_running(runner):
    from generation.jobs import JobFinished

    running = runner.submit(PROMPT, {"size": "32x32", "steps": 5000, "cutouts": 2, "preview_every": 1})
    queued = runner.submit(PROMPT, {"size": "32x32", "steps": 5000, "cutouts": 2})
    wait_for(lambda: runner.get(running)["progress"] > 0)
    assert runner.get(queued)["status"] == "queued"
    assert runner.cancel(queued)["status"] == "cancelled"
    runner.cancel(running)
    job = wait_for(lambda: (j := runner.get(running))["status"] != "running" and j)
    assert job["status"] == "cancelled" and job["finished_at"] and 0 < job["progress"] < 1
    assert runner.latest_preview(running) is not None  # its last preview is still there to look at
    with pytest.raises(JobFinished):
        runner.cancel(running)


def test_jobs_left_running_by_a_crash_become_failed(tmp_path, toy_encoder):
    from generation.jobs import JobRunner
    from indexer.catalog import GenerationJob, open_catalog
    from indexer.catalog.store import utcnow

    catalog = open_catalog(tmp_path / "data")
    with catalog.session() as s:
        s.add(GenerationJob(prompt="x", params="{}", status="running", progress=0.4, created_at=utcnow()))
    runner = JobRunner(catalog, tmp_path / "gen", lambda: toy_encoder).start()
    try:
        (job,), _ = runner.list_jobs()
        assert (job["status"], job["error"]) == ("failed", "interrupted") and job["finished_at"]
    finally:
        runner.close()


def test_a_job_running_at_shutdown_goes_back_in_the_queue(tmp_path, toy_encoder):
    from generation.jobs import JobRunner
    from indexer.catalog import open_catalog

    catalog = open_catalog(tmp_path / "data")
    runner = JobRunner(catalog, tmp_path / "gen", lambda: toy_encoder).start()
    job_id = runner.submit(PROMPT, {"size": "32x32", "steps": 5000, "cutouts": 2})
    wait_for(lambda: runner.get(job_id)["progress"] > 0)
    runner.close()
    job = runner.get(job_id)
    assert (job["status"], job["progress"], job["finished_at"]) == ("queued", 0.0, None)


def test_invalid_jobs_are_refused(runner):
    for prompt, params in [("", {}), (PROMPT, {"steps": 0}), (PROMPT, {"size": "big"}),
                           (PROMPT, {"colour": "red"}), (PROMPT, {"init_image": "/etc/passwd"})]:  # fmt: skip
        with pytest.raises(ValueError):
            runner.submit(prompt, params)


def test_http_api(tmp_path, toy_encoder):
    from flask import Flask

    from searchd.generate_api import init_app

    app = Flask(__name__)
    runner = init_app(app, make_settings(tmp_path / "data"), lambda: toy_encoder)
    try:
        client = app.test_client()
        bad = client.post("/api/generate", json={"prompt": PROMPT, "steps": "many"})
        assert bad.status_code == 400 and "error" in bad.get_json()
        assert client.post("/api/generate", data="x").status_code == 415
        assert client.get("/api/generate/999").get_json() == {"error": "no generation job 999"}

        body = {"prompt": PROMPT, "size": [32, 32], "steps": 6, "cutouts": 2}
        reply = client.post("/api/generate", json=body)
        assert reply.status_code == 202
        job_id = reply.get_json()["id"]
        url = f"/api/generate/{job_id}"
        job = wait_for(lambda: (j := client.get(url).get_json())["status"] == "done" and j)
        assert Path(job["result_path"]).parent == tmp_path / "data" / "generated"
        png = client.get(f"/api/generate/{job_id}/preview")
        assert png.status_code == 200 and png.mimetype == "image/png"
        assert Image.open(io.BytesIO(png.data)).size == (32, 32)
        assert client.post(f"/api/generate/{job_id}/cancel").status_code == 409
        assert [j["id"] for j in client.get("/api/generate").get_json()["jobs"]] == [job_id]
    finally:
        runner.close()


# -- checkpoints a person actually has ------------------------------------------------------------------
def test_a_config_and_checkpoint_that_do_not_match_name_both_and_the_mismatch(tmp_path):
    cfg_path, ckpt_path, _ = write_taming_checkpoint(tmp_path)  # 64 codes
    other = yaml.safe_load(cfg_path.read_text())
    other["model"]["params"]["n_embed"] = 32  # as vqgan_imagenet_f16_1024.yaml beside a 16384-code .ckpt
    small = tmp_path / "f16_32.yaml"
    small.write_text(yaml.safe_dump(other))
    with pytest.raises(VQGANConfigError) as caught:
        load_vqgan(small, ckpt_path)
    message = str(caught.value)
    assert str(small) in message and str(ckpt_path) in message
    assert "32 codes" in message and "64 codes" in message and "size mismatch" not in message


def test_old_non_zip_checkpoints_are_read_or_refused_with_a_sentence(tmp_path, monkeypatch):
    names = ["pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.mc"]
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))

    class ModelCheckpoint:
        pass

    ModelCheckpoint.__module__, ModelCheckpoint.__qualname__ = names[-1], "ModelCheckpoint"
    sys.modules[names[-1]].ModelCheckpoint = ModelCheckpoint
    cfg_path, _, state = write_taming_checkpoint(tmp_path)
    legacy = tmp_path / "legacy.ckpt"
    torch.save(
        {"state_dict": state, "callback": ModelCheckpoint()}, legacy, _use_new_zipfile_serialization=False
    )
    for name in names:
        monkeypatch.delitem(sys.modules, name)
    assert not zipfile.is_zipfile(legacy)
    model = load_vqgan(cfg_path, legacy)
    assert torch.equal(model.codebook, state["quantize.embedding.weight"])

    page = tmp_path / "error-page.ckpt"
    page.write_text("<!DOCTYPE html><html>Not found</html>")
    with pytest.raises(ValueError, match="cannot be read as a PyTorch checkpoint.*web page"):
        load_vqgan(cfg_path, page)


def test_fetch_vqgan_fails_in_seconds_with_a_sentence_offline(tmp_path):
    from click.testing import CliRunner

    from generation.cli import fetch_vqgan_command

    settings = make_settings(tmp_path / "data")
    # A port nobody listens on stands for "no internet": the connection is refused at once.
    args = ["vqgan_imagenet_f16_1024", "--base-url", "http://127.0.0.1:9/mirror", "--timeout", "5"]
    result = CliRunner().invoke(fetch_vqgan_command, args, obj=settings)
    assert result.exit_code != 0
    assert "could not download vqgan_imagenet_f16_1024.yaml" in result.output
    assert "on a machine that has it" in result.output and "vqgan =" in result.output
    assert not any((settings.data_dir / "vqgan").iterdir())  # no partial file left behind


# -- options as the references mean them ----------------------------------------------------------------
def test_init_weight_keeps_the_latent_near_the_start(toy_encoder, tiny_vqgan):
    """Crowson's init_weight: MSE(z, z_start) * w / 2 on the latent (z_start: here the random start)."""

    def run(weight: float) -> Image.Image:
        options = GenerationOptions(
            width=32, height=32, steps=25, seed=4, cutouts=4, lr=0.3, init_weight=weight
        )
        return generate_image(toy_encoder, tiny_vqgan, PROMPT, options)

    start = np.asarray(generate_image(toy_encoder, tiny_vqgan, PROMPT, GenerationOptions(
        width=32, height=32, steps=1, seed=4, cutouts=4, lr=1e-6)), dtype=float)  # fmt: skip
    free, held = (np.abs(np.asarray(run(w), dtype=float) - start).mean() for w in (0.0, 100.0))
    assert held < free * 0.5, (held, free)


def test_augmentations_are_switchable_and_repeatable(toy_encoder, tiny_vqgan):
    from generation.cutouts import CutoutSpec, make_cutouts

    image = torch.rand(1, 3, 48, 48)

    def cuts(augments: str, seed: int) -> torch.Tensor:
        spec = CutoutSpec(count=6, size=32, augments=augments, noise=0.0)
        return make_cutouts(image, spec, torch.Generator().manual_seed(seed))

    plain, strong = cuts("none", 1), cuts("Af,Pe,Ji,Sh,Er", 1)
    assert torch.equal(strong, cuts("Af,Pe,Ji,Sh,Er", 1))  # the seed decides the kornia draws too
    assert not torch.equal(plain, strong)
    # Random erasing (p 0.7, same on the whole batch) blanks a block; the plain crops have none.
    assert (plain == 0).all(dim=1).sum() == 0
    with pytest.raises(ValueError, match="unknown augmentation"):
        GenerationOptions(augments="Af,Zz")
    options = GenerationOptions(width=32, height=32, steps=3, seed=9, cutouts=4, augments="none")
    a, b = (np.asarray(generate_image(toy_encoder, tiny_vqgan, PROMPT, options)) for _ in range(2))
    assert np.array_equal(a, b)


def test_a_random_seed_by_default_recorded_in_the_png(tmp_path, toy_encoder):
    from click.testing import CliRunner

    from generation.cli import generate

    settings = make_settings(tmp_path / "data")
    args = [
        PROMPT,
        "--size",
        "32x32",
        "--steps",
        "1",
        "--cutouts",
        "2",
        "--cut-pow",
        "2",
        "--augments",
        "none",
    ]
    for _ in range(2):
        result = CliRunner().invoke(generate, args, obj=settings)
        assert result.exit_code == 0, result.output
    seeds = {read_generation_info(p)[1]["seed"] for p in settings.layout.generated.glob("*.png")}
    assert len(seeds) == 2 and all(isinstance(s, int) and s >= 0 for s in seeds)
    (params,) = {
        json.dumps(read_generation_info(p)[1]["cut_pow"]) for p in settings.layout.generated.glob("*.png")
    }
    assert params == "2.0"


def test_an_image_prompt_pulls_towards_its_picture(tmp_path, toy_encoder, tiny_vqgan):
    from indexer.toyworld import Spec, render

    target = tmp_path / "star.png"
    render(Spec("yellow", "star", "white background"), (64, 64), np.random.default_rng(1)).save(target)
    options = GenerationOptions(width=64, height=64, steps=30, seed=3, cutouts=8, lr=0.2,
                                image_prompts=(f"{target}:1",))  # fmt: skip
    image = generate_image(toy_encoder, tiny_vqgan, "a yellow star:0.01", options)
    assert similarity(toy_encoder, image, OTHER_PROMPT) > similarity(toy_encoder, image, PROMPT)
    with pytest.raises(ValueError, match="library image"):
        generate_image(toy_encoder, tiny_vqgan, "#5", GenerationOptions(width=32, height=32, steps=1))
