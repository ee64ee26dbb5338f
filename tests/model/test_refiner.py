"""The refinement stage: its labels and box targets, that it learns, and how it re-checks candidates."""
import numpy as np
import pytest
import torch

from components.model.refiner import Refiner, from_window, merge_touching, recheck, to_window
from components.model.vlm import DefectVLM, normalise
from components.train.images import FusedSet
from components.train.refine import Examples, Jitter, _flip, collect, jitter_boxes, labels_for, train_refiner

pytestmark = pytest.mark.model  # the session's tiny trained model (tests/conftest.py)

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
    labels, target = labels_for(boxes, gt, gt_cls, NONE, 0.33)
    assert labels.tolist() == [2, -1, NONE, 4]
    assert target.tolist() == [0, 0, -1, 1]  # the duplicate still learns the box it lies on
    labels, target = labels_for(boxes, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), NONE, 0.33)
    assert labels.tolist() == [NONE] * 4 and target.tolist() == [-1] * 4


def test_window_units_round_trip_and_follow_the_training_flips():
    refiner = Refiner(NONE)
    boxes = torch.tensor([[10., 20, 30, 28], [100, 100, 104, 140]])
    gt = torch.tensor([[12., 18, 34, 30], [98, 95, 106, 150]])
    win = refiner.windows(boxes)
    assert torch.allclose(from_window(to_window(gt, win), win), gt, atol=1e-4)
    # A crop flipped left-right and transposed: the target must describe the moved box.
    side = 16
    crop = torch.zeros(1, 3, side, side)
    crop[0, 0, 2:5, 9:15] = 1.0  # rows y 2-5, columns x 9-15 of the window
    w = torch.tensor([[0., 0, side, side]])
    goal = to_window(torch.tensor([[9., 2, 15, 5]]), w)
    for k in range(8):
        g = torch.Generator().manual_seed(k)
        moved, _, t = _flip(crop, torch.zeros(1, 2), goal, g)
        ys, xs = moved[0, 0].nonzero(as_tuple=True)
        seen = torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32)
        assert torch.allclose(from_window(t, w), seen, atol=1e-4)


def test_jittered_boxes_stay_around_their_defect_within_the_set_ranges():
    gt = torch.tensor([[10., 10, 30, 50], [100, 100, 200, 120]])
    jitter = Jitter(copies=50, shift=0.3, min_scale=0.5, max_scale=1.3)
    boxes, source = jitter_boxes(gt, jitter, torch.Generator().manual_seed(0))
    assert boxes.shape == (100, 4) and source.tolist() == [0] * 50 + [1] * 50
    size, gsize = boxes[:, 2:] - boxes[:, :2], gt[source, 2:] - gt[source, :2]
    ratio = size / gsize
    assert ratio.min() >= 0.5 - 1e-5 and ratio.max() <= 1.3 + 1e-5
    assert ratio.max() - ratio.min() > 0.5  # really spread over the range
    shift = ((boxes[:, :2] + boxes[:, 2:]) - (gt[source, :2] + gt[source, 2:])).abs() / 2 / gsize
    assert shift.max() <= 0.3 + 1e-5 and shift.max() > 0.2


def test_windows_grow_with_long_candidates_up_to_max_side():
    boxes = torch.tensor([[0., 0, 4, 4], [0, 0, 60, 10], [0, 0, 200, 10]])
    def sides(r):
        return (r.windows(boxes)[:, 2] - r.windows(boxes)[:, 0]).tolist()

    assert sides(Refiner(NONE, max_side=160.0)) == [24.0, 120.0, 160.0]
    assert sides(Refiner(NONE, max_side=96.0)) == [24.0, 96.0, 96.0]


def test_collect_adds_box_only_examples_around_each_defect(tiny_model, boards):
    vlm = DefectVLM.load(tiny_model.model("spatial"), quantize=False)
    data = FusedSet(boards[:2], tuple(vlm.meta.classes), vlm.meta.input_size)
    n_defects = sum(len(b) for b in data.boxes)
    # A floor above every score: no head proposals, so only the jittered boxes remain.
    plain = collect(vlm, vlm.refiner, data, floor=1.01, top_k=8, iou_min=0.33, views=1, seed=0)
    assert len(plain.labels) == 0
    ex = collect(vlm, vlm.refiner, data, floor=1.01, top_k=8, iou_min=0.33, views=1, seed=0,
                 jitter=Jitter(copies=3, shift=0.3, min_scale=0.5, max_scale=1.3))
    assert len(ex.labels) == 3 * n_defects
    assert (ex.labels == -1).all()  # they teach the box, never the class
    assert not ex.targets.isnan().any()
    assert ex.crops.shape[1:] == (3, vlm.refiner.crop, vlm.refiner.crop)


def _toy_examples(n: int = 192) -> Examples:
    # Class k draws a bright square in a class-dependent place; "none" is blank.
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, NONE + 1, (n,), generator=g)
    crops = torch.randn(n, 3, 32, 32, generator=g) * 0.1
    for i, k in enumerate(labels.tolist()):
        if k < NONE:
            crops[i, k % 3, 4 * k:4 * k + 8, 4 * k:4 * k + 8] += 2.0
    # The box to learn: the square's (in window units) for defects, none for "none".
    goal = torch.full((n, 4), float("nan"))
    w = torch.tensor([[0., 0, 32, 32]])
    for i, k in enumerate(labels.tolist()):
        if k < NONE:
            goal[i] = to_window(torch.tensor([[4. * k, 4 * k, 4 * k + 8, 4 * k + 8]]), w)[0]
    return Examples(crops.half(), torch.full((n, NONE), 0.5), torch.zeros(n, 2), labels, goal, torch.zeros(n, 0))


def test_refiner_learns_and_its_weights_change():
    torch.manual_seed(0)
    refiner = Refiner(NONE)
    ex = _toy_examples()
    before = [p.detach().clone() for p in refiner.parameters()]
    figures = train_refiner(refiner, ex, epochs=30, batch=32, lr=3e-3, seed=0)
    assert figures["refine_examples"] == 192 and figures["refine_steps"] == 30 * 6
    assert all(not torch.equal(a, b) for a, b in zip(before, refiner.parameters(), strict=True))
    with torch.no_grad():
        logits, t = refiner.classify(ex.crops.float(), ex.head_probs, ex.log_size)
    assert (logits.argmax(-1) == ex.labels).float().mean() > 0.8
    has = ~ex.targets[:, 0].isnan()
    error = (t[has] - ex.targets[has]).abs().mean()
    assert error < 0.5 * (ex.targets[has] - ex.targets[has].mean(0)).abs().mean()  # beats guessing the mean box


def test_too_few_examples_leave_the_refiner_untrained():
    refiner = Refiner(NONE)
    figures = train_refiner(refiner, _toy_examples(8), epochs=2, batch=32, lr=1e-3, seed=0)
    assert figures["refine_steps"] == 0


def test_recheck_names_moves_merges_and_drops_candidates():
    torch.manual_seed(0)
    refiner = Refiner(NONE).eval()
    with torch.no_grad():  # a refiner that puts every box on its window's centre, 1/4 of its side
        refiner.box[-1].weight.zero_()
        refiner.box[-1].bias.copy_(torch.tensor([0.0, 0.0, -1.3863, -1.3863]))
    images = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    out = {"heat": torch.zeros(2, NONE, 4, 4), "pictures": normalise(images)}
    dets = [[(0, 0.9, (2.0, 2.0, 12.0, 12.0)), (1, 0.3, (30.0, 30.0, 40.0, 44.0)), (2, 0.2, (31.0, 31.0, 41.0, 45.0))], []]
    kept = recheck(refiner, out, dets, 16.0, floor=0.0)
    assert len(kept[0]) == 3 and kept[1] == []
    assert all(0 <= k < NONE and 0.0 <= s <= 1.0 for k, s, _ in kept[0])
    # Each box now sits on its candidate's centre, a quarter of its window (2 x longer side, >= 24 px) wide.
    for (_, _, b), (_, _, (x1, y1, x2, y2)) in zip(kept[0], dets[0], strict=True):
        half = max(24.0, 2 * max(x2 - x1, y2 - y1)) / 8
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        assert np.allclose(b, [cx - half, cy - half, cx + half, cy + half], atol=1e-3)
    # A second pass works on the corrected boxes: 6-px boxes get the 24-px window, so 3-px halves.
    again = recheck(refiner, out, dets, 16.0, floor=0.0, passes=2)
    for (_, _, b), (_, _, (x1, y1, x2, y2)) in zip(again[0], dets[0], strict=True):
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        assert np.allclose(b, [cx - 3, cy - 3, cx + 3, cy + 3], atol=1e-3)
    merged = recheck(refiner, out, dets, 16.0, floor=0.0, nms_iou=0.5)
    assert len(merged[0]) == 2  # the two candidates 1 px apart became one
    assert recheck(refiner, out, dets, 16.0, floor=1.01) == [[], []]


def test_the_refiner_travels_with_the_model_folder(tiny_model, tmp_path):
    folder = tiny_model.model("spatial")
    vlm = DefectVLM.load(folder)
    assert vlm.refiner is not None and (folder / "refiner.pt").exists()
    again = DefectVLM.load(vlm.save(tmp_path / "copy"))
    for a, b in zip(vlm.refiner.state_dict().values(), again.refiner.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_the_fused_answer_time_trunk_matches_the_trained_one_and_is_not_saved():
    torch.manual_seed(0)
    refiner = Refiner(NONE)
    train_refiner(refiner, _toy_examples(64), epochs=1, batch=32, lr=1e-3, seed=0)  # BN statistics move
    crops = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        assert refiner._fast  # built by eval() at the end of training
        assert torch.allclose(refiner.features(crops), refiner.trunk(crops), atol=1e-4)
    assert not any("_fast" in k for k in refiner.state_dict())
    refiner.train()
    assert not refiner._fast


def test_halves_of_one_long_defect_merge_and_neighbours_stay_apart():
    dets = [
        (1, 0.9, (100., 50, 140, 56)), (1, 0.6, (141., 49, 190, 57)),  # one open, two halves 1 px apart
        (1, 0.8, (100., 58, 140, 64)),   # a parallel open just below: side by side, not end to end
        (2, 0.7, (191., 50, 200, 56)),   # touches the open's end, but another class
        (1, 0.5, (300., 300, 310, 310)), (1, 0.5, (315., 300, 325, 310)),  # same class, 5 px apart
    ]
    merged = merge_touching(dets, gap=2.0, overlap=0.5)
    assert len(merged) == 5
    assert (1, 0.9, (100., 49, 190, 57)) in merged  # the union, the surer score
    for d in dets[2:]:
        assert d in merged
    assert len(merge_touching(dets, gap=6.0, overlap=0.5)) == 4  # a wider gap joins the pair 5 px apart
    assert merge_touching([], 2.0, 0.5) == []
