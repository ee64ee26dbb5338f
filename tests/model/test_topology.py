"""Topology features: what a defect does to the number of connected pieces, against the template."""
import numpy as np
import torch
from PIL import Image

from components.model.fuse import fuse
from components.model.refiner import Refiner, recheck
from components.model.topology import FEATURES, topology
from components.model.vlm import normalise
from components.train.refine import Examples, train_refiner

SIZE = 96
WINDOW = torch.tensor([[16., 16, 80, 80]])


def _pair(template: np.ndarray, board: np.ndarray | None) -> torch.Tensor:
    """Normalised fused picture of a board (and its template) drawn as 0/255 arrays."""
    img = Image.fromarray(board if board is not None else template)
    tpl = Image.fromarray(template) if board is not None else None
    return normalise(np.asarray(fuse(img, tpl, SIZE))[None])


def _features(template, board) -> dict[str, float]:
    row = topology(_pair(template, board), torch.tensor([0]), WINDOW)[0].tolist()
    return dict(zip(FEATURES, row, strict=True))


def _traces() -> np.ndarray:
    """Two bright horizontal traces on a dark board."""
    t = np.zeros((SIZE, SIZE), np.uint8)
    t[30:38, :] = 255
    t[58:66, :] = 255
    return t


def test_an_open_adds_a_bright_piece_and_a_short_removes_one():
    template = _traces()
    cut = template.copy()
    cut[30:38, 46:52] = 0  # the upper trace cut through
    f = _features(template, cut)
    assert f["has_reference"] == 1 and f["d_bright_pieces"] == 1 and f["d_dark_pieces"] == -1
    assert f["dark_added"] > 0 and f["bright_added"] == 0
    bridged = template.copy()
    bridged[38:58, 46:52] = 255  # the two traces joined
    f = _features(template, bridged)
    assert f["d_bright_pieces"] == -1 and f["d_dark_pieces"] == 1 and f["bright_added"] > 0


def test_a_nibble_or_bulge_changes_no_count_and_a_hole_adds_a_dark_piece():
    template = _traces()
    bite = template.copy()
    bite[30:33, 46:52] = 0  # a notch in the trace's edge: the trace stays whole
    f = _features(template, bite)
    assert (f["d_bright_pieces"], f["d_dark_pieces"]) == (0, 0) and f["dark_added"] > 0
    pad = np.zeros((SIZE, SIZE), np.uint8)
    pad[24:72, 24:72] = 255
    holed = pad.copy()
    holed[44:50, 44:50] = 0
    f = _features(pad, holed)
    assert (f["d_bright_pieces"], f["d_dark_pieces"]) == (0, 1)


def test_counts_survive_flips_and_a_board_without_template_gives_zeros():
    template = _traces()
    cut = template.copy()
    cut[30:38, 46:52] = 0
    one = _features(template, cut)
    assert _features(template[:, ::-1].copy(), cut[:, ::-1].copy()) == one
    assert _features(template.T.copy(), cut.T.copy()) == one
    assert topology(_pair(cut, None), torch.tensor([0]), WINDOW).abs().sum() == 0


def test_a_refiner_with_topology_learns_the_class_from_the_counts_alone():
    # Identical crops, so only the topology features can tell the classes apart.
    torch.manual_seed(0)
    n = 128
    labels = torch.arange(n) % 2
    topo = torch.zeros(n, len(FEATURES))
    topo[:, 0] = 1
    topo[:, 1] = labels.float()  # class 1: one more bright piece (an open)
    ex = Examples(torch.zeros(n, 3, 32, 32).half(), torch.full((n, 2), 0.5), torch.zeros(n, 2), labels,
                  torch.full((n, 4), float("nan")), topo)
    refiner = Refiner(2, topology=True)
    train_refiner(refiner, ex, epochs=20, batch=32, lr=3e-3, seed=0)
    with torch.no_grad():
        logits, _ = refiner.classify(ex.crops.float(), ex.head_probs, ex.log_size, topo)
    assert (logits.argmax(-1) == labels).float().mean() > 0.95


def test_recheck_computes_the_features_from_the_pictures():
    template = _traces()
    cut = template.copy()
    cut[30:38, 46:52] = 0
    out = {"heat": torch.zeros(1, 2, 6, 6), "pictures": _pair(template, cut)}
    refiner = Refiner(2, topology=True).eval()
    kept = recheck(refiner, out, [[(0, 0.9, (40.0, 28.0, 58.0, 40.0))]], 16.0, floor=0.0)
    assert len(kept[0]) == 1 and 0 <= kept[0][0][0] < 2
