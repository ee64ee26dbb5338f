"""Continual training (train.warm_start): what a warm start trains, and that it starts from the
given model's weights."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from components import config
from components.config import Config
from components.pipeline import RunLayout
from components.train import stages
from components.train.warm_start import load_weights, scaled
from tests.conftest import TINY, tiny_cfg


def test_a_cold_start_trains_as_configured_and_a_warm_one_less_and_gentler():
    t = Config().train
    assert scaled(t) is t
    w = scaled(dataclasses.replace(t, warm_start="/a/model"))
    assert (w.spatial_steps, w.refine_epochs, w.sft_max_steps, w.dpo_max_steps) == (208, 1, 60, 24)
    assert w.warmup_steps == 0 and w.spatial_minutes == pytest.approx(12.0)
    assert (w.spatial_lr, w.sft_lr, w.dpo_lr, w.refine_lr) == pytest.approx(
        (t.spatial_lr / 2, t.sft_lr / 2, t.dpo_lr / 2, t.refine_lr / 2))


def test_an_unresolved_champion_or_a_bad_share_is_refused():
    t = Config().train
    with pytest.raises(ValueError, match="resolved"):
        scaled(dataclasses.replace(t, warm_start="champion"))
    with pytest.raises(ValueError, match=r"warm_start_share \(0"):
        scaled(dataclasses.replace(t, warm_start="/a/model", warm_start_share=0.0))


def _state(vlm) -> dict[str, torch.Tensor]:
    return {**{f"model.{k}": v for k, v in vlm.model.state_dict().items()},
            **{f"head.{k}": v for k, v in vlm.head.state_dict().items()},
            **{f"refiner.{k}": v for k, v in vlm.refiner.state_dict().items()}}


@pytest.mark.model
def test_load_weights_copies_every_weight(tiny_model, tmp_path):
    from components.model.vlm import DefectVLM

    source = _state(DefectVLM.load(tiny_model.model("quantize"), quantize=False))
    vlm = stages.new_model(tiny_cfg(tmp_path))
    assert any(not torch.equal(v, source[k]) for k, v in _state(vlm).items())
    load_weights(vlm, tiny_model.model("quantize"))
    assert all(torch.equal(v, source[k]) for k, v in _state(vlm).items())


@pytest.mark.model
def test_a_model_of_another_shape_is_refused_by_name(tiny_model):
    vlm = stages.new_model(config.load(None, [*TINY, "model.head_channels=8"]))
    with pytest.raises(ValueError, match="another shape.*head_channels 16 vs 8"):
        load_weights(vlm, tiny_model.model("quantize"))
    with pytest.raises(ValueError, match="not a model folder"):
        load_weights(vlm, tiny_model.root / "no-such-model")


@pytest.mark.model
def test_warm_stages_start_from_the_model_train_fewer_steps_and_skip_the_warm_up(tiny_model, boards, tmp_path):
    from components.model.vlm import DefectVLM

    cfg = tiny_cfg(tmp_path)
    cfg.train.warm_start = str(tiny_model.model("quantize"))
    cfg.train.sft_max_steps = 5  # 2 warm steps: the first of a schedule that warms up has no learning rate
    run = RunLayout(tmp_path / "run")
    spatial = stages.run_spatial(boards[:4], cfg, run.dir("spatial"), "test-version")
    assert spatial["warm_start"] == cfg.train.warm_start and spatial["steps"] == 2  # 0.4 of 4
    sft = stages.run_sft(run.model("spatial"), boards[:4], tiny_model.dir("qa"), cfg, run.dir("sft"))
    assert "warmup_steps" not in sft and sft["sft_steps"] == 2  # 0.4 of 5
    source, warm = (_state(DefectVLM.load(d, quantize=False)) for d in (tiny_model.model("quantize"), run.model("sft")))
    # trained on from the source's weights: the head moved, and the language model too
    assert any(not torch.equal(warm[k], source[k]) for k in source if k.startswith("head."))
    assert any(not torch.equal(warm[k], source[k]) for k in source if k.startswith("model.model.language_model"))
