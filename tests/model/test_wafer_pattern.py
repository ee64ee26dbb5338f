"""The wafer pattern branch: how a map becomes its picture, that training changes the weights
and learns an easy pattern, that calibration and saving keep the answers, and the metrics."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from components.config import WaferConfig
from components.data.wafer import FAIL, PASS, WaferMap
from components.evaluation.wafer_metrics import pattern_metrics
from components.model.wafer_pattern import PatternMeta, WaferPattern, render
from components.train.wafer_lm import evidence_of, fold_of, heldout_evidence
from components.train.wafer_pattern import calib_part, train_pattern

TINY = dict(input_size=16, patch_size=4, vision_hidden=16, vision_depth=1, vision_heads=2, head_channels=8)


def _wafer(side: int, centre_blob: bool) -> np.ndarray:
    ys, xs = np.mgrid[:side, :side]
    c = (side - 1) / 2
    r = np.hypot(ys - c, xs - c)
    grid = np.where(r <= c, PASS, 0).astype(np.uint8)
    if centre_blob:
        grid[r <= c / 3] = FAIL
    return grid


def _maps(n: int) -> list[WaferMap]:
    return [WaferMap(str(i), _wafer(20 + i % 9, i % 2 == 1), "Center" if i % 2 else "None", f"t[{i}]")
            for i in range(n)]


def test_a_map_renders_as_area_shares_of_each_die_state():
    for side, out in ((32, 16), (30, 60)):  # shrunk and enlarged
        grid = _wafer(side, True)
        x = render(grid, out)
        assert x.shape == (3, out, out) and x.min() >= -1 and x.max() <= 1
        shares = (x + 1) / 2
        # Area means keep the share of failing dies and of the wafer whatever the size.
        assert shares[0].mean() == pytest.approx((grid == FAIL).mean(), abs=0.005)
        assert shares[2].mean() == pytest.approx((grid > 0).mean(), abs=0.005)
        assert torch.allclose(shares[0] + shares[1], shares[2], atol=1e-5)


def test_the_input_must_split_into_merged_patches():
    with pytest.raises(ValueError, match="multiple of 2 x wafer.patch_size"):
        WaferPattern(PatternMeta(labels=["None", "Center"], **{**TINY, "input_size": 20}))


def test_calibration_maps_are_kept_out_of_training_by_id():
    maps = _maps(200)
    train, calib = calib_part(maps, 0.1)
    assert len(train) + len(calib) == 200 and 5 < len(calib) < 40
    assert calib_part(list(reversed(maps)), 0.1)[1][0].map_id in {m.map_id for m in calib}


def test_training_changes_every_part_learns_an_easy_pattern_and_saves_what_it_answers(tmp_path):
    labels = ("None", "Center")
    cfg = dataclasses.replace(WaferConfig(), steps=60, batch_size=16, lr=3e-3,
                              calib_share=0.2, **TINY)
    maps = _maps(80)
    torch.manual_seed(cfg.seed)
    before = WaferPattern(PatternMeta(labels=list(labels), **TINY)).state_dict()
    model, summary = train_pattern(maps, labels, cfg)
    after = model.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in ("head.out.weight", "visual.blocks.0.mlp.linear_fc1.weight"))
    assert summary["train_maps"] + summary["calib_maps"] == 80 and summary["temperature"] > 0
    probs = model.probabilities([m.grid for m in maps])
    truth = [m.label for m in maps]
    assert pattern_metrics(probs, truth, list(labels), 10)["accuracy"] > 0.9
    again = WaferPattern.load(model.save(tmp_path / "m")).probabilities([m.grid for m in maps])
    assert torch.allclose(probs, again, atol=1e-6)


def test_training_refuses_labels_outside_the_line():
    maps = _maps(10)
    maps[3].label = "Blob"
    with pytest.raises(ValueError, match=r"\['Blob'\] are not the line's labels"):
        train_pattern(maps, ("None", "Center"), dataclasses.replace(WaferConfig(), **TINY))


def test_metrics_per_label_worst_recall_and_none_false_alarms():
    labels = ["None", "Center", "Scratch"]
    truth = ["None"] * 4 + ["Center"] * 2 + ["Scratch"] * 2
    pred = ["None", "None", "None", "Center", "Center", "Center", "Scratch", "None"]
    probs = torch.tensor([[0.9 if p == lb else 0.05 for lb in labels] for p in pred])
    m = pattern_metrics(probs, truth, labels, 10)
    assert m["none_false_alarm"] == pytest.approx(0.25)
    assert m["pattern_recall_min"] == pytest.approx(0.5)
    assert m["accuracy"] == pytest.approx(6 / 8)
    f1 = {"None": 2 * 0.75 * 0.75 / 1.5, "Center": 2 * (2 / 3) / (1 + 2 / 3), "Scratch": 2 * 0.5 / 1.5}
    assert m["macro_f1"] == pytest.approx(sum(f1.values()) / 3)
    assert m["confusion"][2] == [1, 0, 1]
    with pytest.raises(ValueError, match="not the line's"):
        pattern_metrics(probs, truth[:-1] + ["Donut"], labels, 10)


def test_with_all_views_a_turned_or_flipped_map_reads_the_same():
    torch.manual_seed(0)
    model = WaferPattern(PatternMeta(labels=["None", "Center", "Scratch"], views=8, **TINY)).eval()
    grid = _wafer(32, False)  # twice the input: the area resize is exact, so turns commute with it
    grid[4:26, 14] = FAIL  # a line: not symmetric under a quarter turn
    turned = [grid, np.rot90(grid).copy(), np.fliplr(grid).copy(), grid.T.copy()]
    probs = model.probabilities(turned)
    assert (probs - probs[0]).abs().max() < 1e-6
    model.meta.views = 1
    one = model.probabilities(turned)
    assert (one - one[0]).abs().max() > 1e-4


def test_the_language_models_evidence_comes_from_branches_that_did_not_train_on_the_map():
    labels = ("None", "Center")
    cfg = dataclasses.replace(WaferConfig(), steps=20, batch_size=16, calib_share=0.2, evidence_folds=2, **TINY)
    maps = _maps(60)
    branch, _ = train_pattern(maps, labels, cfg)
    folds = [fold_of(m, 2) for m in maps]
    assert 15 < folds.count(0) < 45
    pick = maps[:10] + maps[:3]  # drawn with replacement: a map may come twice
    held = heldout_evidence(branch, maps, pick, cfg)
    assert [lb for lb, _ in held] == [m.label for m in pick] and held[10:] == held[:3]
    own = evidence_of(branch, pick)
    assert all(e != o for (_, e), (_, o) in zip(held, own, strict=True))
    assert heldout_evidence(branch, maps, pick, dataclasses.replace(cfg, evidence_folds=1)) == own
