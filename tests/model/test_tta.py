"""Test-time flips of the spatial branch: each view's maps come back to the picture's frame,
so a head that is right on every view decodes the same box from each, and from their mean."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from components.model.spatial_head import build_targets, decode
from components.model.views import dihedral_maps, undo_dihedral, undo_window
from components.train.images import dihedral

SIDE, STRIDE = 448, 16.0
BOX = np.array([[101.0, 203.0, 141.0, 226.0]])  # off the cell grid, wider than tall


def _ideal_head(box: np.ndarray) -> dict[str, torch.Tensor]:
    """What a perfect head outputs for one box of class 2: logits of its training targets."""
    t = build_targets([torch.tensor(box)], [torch.tensor([2])], 4, (SIDE // 16, SIDE // 16), STRIDE)
    logit = lambda p: torch.logit(p.clamp(1e-4, 1 - 1e-4))  # noqa: E731
    return {"heat": logit(t["heat"]), "offset": logit(t["offset"]), "size": t["size"]}


@pytest.mark.parametrize("k", range(8))
def test_each_view_maps_back_to_the_box_it_saw(k):
    _, seen = dihedral(np.zeros((SIDE, SIDE, 3), np.uint8), BOX, k)
    (cls, _, box), = decode(undo_dihedral(_ideal_head(seen), k), STRIDE, 0.5, 5)[0]
    assert cls == 2 and box == pytest.approx(tuple(BOX[0]), abs=0.05)


def test_the_mean_of_all_views_is_the_box():
    views = [undo_dihedral(_ideal_head(dihedral(np.zeros((SIDE, SIDE, 3), np.uint8), BOX, k)[1]), k) for k in range(8)]
    mean = {key: torch.stack([v[key] for v in views]).mean(0) for key in views[0]}
    (_, _, box), = decode(mean, STRIDE, 0.5, 5)[0]
    assert box == pytest.approx(tuple(BOX[0]), abs=0.05)


def test_picture_views_are_the_training_views():
    img = np.random.default_rng(0).integers(0, 255, (SIDE, SIDE, 3), dtype=np.uint8)
    for k in range(8):
        want, _ = dihedral(img, BOX, k)
        got = dihedral_maps(torch.tensor(img).permute(2, 0, 1)[None], k)[0].permute(1, 2, 0).numpy()
        assert np.array_equal(got, want), k


def test_a_trained_model_answers_with_views(tiny_model, boards):
    from components.model.fuse import fuse, open_gray
    from components.model.vlm import DefectVLM

    vlm = DefectVLM.load(tiny_model.model("quantize"))
    pic = np.asarray(fuse(open_gray(boards[0].test_path), boards[0].template_path, vlm.meta.input_size))[None]
    one, eight = vlm.spatial(pic), vlm.spatial(pic, views=8)
    assert one["heat"].shape == eight["heat"].shape and not torch.equal(one["heat"], eight["heat"])
    assert torch.equal(one["pictures"], eight["pictures"])
    with pytest.raises(ValueError, match="1..8"):
        vlm.spatial(pic, views=9)


@pytest.mark.parametrize("k", range(8))
def test_a_refiner_box_said_on_a_view_comes_back_to_the_crop(k):
    from components.train.refine import _flip

    goal = torch.tensor([[0.12, -0.3, -0.7, -1.1]])
    seed = next(s for s in range(200) if int(torch.randint(8, (1,), generator=torch.Generator().manual_seed(s))) == k)
    _, _, seen = _flip(torch.zeros(1, 3, 8, 8), torch.zeros(1, 2), goal, torch.Generator().manual_seed(seed))
    assert torch.allclose(undo_window(seen, k), goal)


def test_the_refiner_averages_its_views(tiny_model, boards):
    from components.model.fuse import fuse, open_gray
    from components.model.vlm import DefectVLM

    vlm = DefectVLM.load(tiny_model.model("quantize"))
    pic = np.asarray(fuse(open_gray(boards[0].test_path), boards[0].template_path, vlm.meta.input_size))[None]
    out = vlm.spatial(pic)
    boxes = torch.tensor([[100.0, 80.0, 130.0, 120.0], [20.0, 30.0, 60.0, 44.0]])
    index, probs = torch.zeros(2, dtype=torch.long), torch.full((2, len(vlm.meta.classes)), 0.5)
    one = vlm.refiner(out["pictures"], index, boxes, probs, vlm.stride)
    same = vlm.refiner(out["pictures"], index, boxes, probs, vlm.stride, views=1)
    eight = vlm.refiner(out["pictures"], index, boxes, probs, vlm.stride, views=8)
    assert torch.equal(one[0], same[0])
    assert torch.allclose(eight[0].exp().sum(1), torch.ones(2), atol=1e-5)  # log of a mean probability
    assert eight[1].shape == (2, 4) and not torch.allclose(one[1], eight[1])
