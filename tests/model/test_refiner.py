"""The refinement stage: its labels, that it learns, and that it only names or drops candidates."""
import numpy as np
import torch

from components.model.refiner import Refiner, recheck
from components.model.vlm import DefectVLM
from components.train.refine import Examples, labels_for, train_refiner

NONE = 6


def test_labels_follow_the_matched_defect_not_the_head():
    gt = torch.tensor([[10., 10, 30, 30], [100, 100, 120, 120]])
    gt_cls = torch.tensor([2, 4])
    boxes = torch.tensor([
        [11., 11, 31, 31],    # on defect 0: learns class 2
        [12., 12, 30, 30],    # a second candidate on defect 0: a duplicate, left out
        [200., 200, 220, 220],  # on nothing: "none"
        [101., 99, 121, 119],  # on defect 1: class 4
    ])
    assert labels_for(boxes, gt, gt_cls, NONE, 0.33).tolist() == [2, -1, NONE, 4]
    assert labels_for(boxes, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), NONE, 0.33).tolist() == [NONE] * 4


def _toy_examples(n: int = 192) -> Examples:
    # Class k draws a bright square in a class-dependent place; "none" is blank.
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, NONE + 1, (n,), generator=g)
    crops = torch.randn(n, 3, 32, 32, generator=g) * 0.1
    for i, k in enumerate(labels.tolist()):
        if k < NONE:
            crops[i, k % 3, 4 * k:4 * k + 8, 4 * k:4 * k + 8] += 2.0
    return Examples(crops.half(), torch.full((n, NONE), 0.5), torch.zeros(n, 2), labels)


def test_refiner_learns_and_its_weights_change():
    torch.manual_seed(0)
    refiner = Refiner(NONE)
    ex = _toy_examples()
    before = [p.detach().clone() for p in refiner.parameters()]
    figures = train_refiner(refiner, ex, epochs=30, batch=32, lr=3e-3, seed=0)
    assert figures["refine_examples"] == 192 and figures["refine_steps"] == 30 * 6
    assert all(not torch.equal(a, b) for a, b in zip(before, refiner.parameters()))
    with torch.no_grad():
        pred = refiner.classify(ex.crops.float(), ex.head_probs, ex.log_size).argmax(-1)
    assert (pred == ex.labels).float().mean() > 0.8


def test_too_few_examples_leave_the_refiner_untrained():
    refiner = Refiner(NONE)
    figures = train_refiner(refiner, _toy_examples(8), epochs=2, batch=32, lr=1e-3, seed=0)
    assert figures["refine_steps"] == 0


def test_recheck_keeps_boxes_and_drops_what_falls_below_the_floor():
    torch.manual_seed(0)
    refiner = Refiner(NONE).eval()
    images = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    out = {"heat": torch.zeros(2, NONE, 4, 4)}
    dets = [[(0, 0.9, (2.0, 2.0, 12.0, 12.0)), (1, 0.3, (30.0, 30.0, 40.0, 44.0))], []]
    kept = recheck(refiner, images, out, dets, 16.0, floor=0.0)
    assert [d[2] for d in kept[0]] == [d[2] for d in dets[0]] and kept[1] == []
    assert all(0 <= k < NONE and 0.0 <= s <= 1.0 for k, s, _ in kept[0])
    assert recheck(refiner, images, out, dets, 16.0, floor=1.01) == [[], []]


def test_the_refiner_travels_with_the_model_folder(tiny_model, tmp_path):
    folder = tiny_model / "spatial" / "model"
    vlm = DefectVLM.load(folder)
    assert vlm.refiner is not None and (folder / "refiner.pt").exists()
    again = DefectVLM.load(vlm.save(tmp_path / "copy"))
    for a, b in zip(vlm.refiner.state_dict().values(), again.refiner.state_dict().values()):
        assert torch.equal(a, b)
