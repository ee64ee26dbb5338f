"""The model: built offline, patch layout matches the processor, the spatial branch and the
trl trainers really change the parameters they should (and only those)."""
import numpy as np
import pytest
import torch

from components.config import CLASSES
from components.model.fuse import Frame, fuse
from components.model.spatial_head import build_targets, decode
from components.model.vlm import DefectVLM, normalise, patchify
from components.train.stages import new_model
from tests.conftest import tiny_cfg


@pytest.fixture()
def vlm(tmp_path):
    return new_model(tiny_cfg(tmp_path))


def test_patchify_matches_the_qwen_processor(vlm, boards):
    img = fuse(boards[0].test_path, boards[0].template_path, vlm.meta.input_size)
    expected = vlm.processor.image_processor(images=[img], return_tensors="pt")["pixel_values"]
    mine = patchify(normalise(np.asarray(img)[None]), vlm.meta.patch_size)
    assert torch.allclose(expected, mine, atol=1e-5)


def test_fused_input_has_difference_channel(boards):
    img = np.asarray(fuse(boards[0].test_path, boards[0].template_path, 224))
    alone = np.asarray(fuse(boards[0].test_path, None, 224))
    assert img[..., 2].max() > 100  # defects differ from the template
    # No template: only the board, so it never looks like a template fused with itself (R = G).
    assert alone[..., 1].max() == 0 and alone[..., 2].max() == 0
    assert (alone[..., 0] == img[..., 0]).all()


def test_a_board_under_other_lighting_fuses_like_the_original(boards):
    from PIL import Image, ImageEnhance

    from components.model.fuse import match_levels, open_gray

    board, template = open_gray(boards[0].test_path), open_gray(boards[0].template_path)
    assert match_levels(board, template) is board  # same lighting: nothing to change
    dark = ImageEnhance.Brightness(board).enhance(0.6)
    plain = np.asarray(fuse(board, template, 224)).astype(int)
    darkened = np.asarray(fuse(dark, template, 224)).astype(int)
    unmatched = np.abs(np.asarray(dark, dtype=int) - np.asarray(template, dtype=int)).mean()
    assert unmatched > 20  # without matching, the difference channel lights up everywhere
    assert np.abs(darkened - plain).mean() < 1 and np.abs(darkened[..., 2] - plain[..., 2]).max() <= 3
    flat = Image.new("L", board.size, 128)
    assert match_levels(flat, template) is flat


def test_fused_set_adds_no_template_copies_with_the_same_boxes(boards):
    from components.train.images import FusedSet

    plain = FusedSet(boards[:3], CLASSES, 224)
    both = FusedSet(boards[:3], CLASSES, 224,
                    template_share=1.0, no_template_share=1.0)
    assert len(plain) == 3 and len(both) == 3 * 4  # board, board alone, template, template alone
    alone = [i for i, img in enumerate(both.images) if img[..., 1].max() == 0]
    assert len(alone) == 6
    boards_alone = [i for i in alone if not both.is_template[i]]
    for i, j in zip(boards_alone, range(3), strict=True):
        assert np.array_equal(both.boxes[i], plain.boxes[j]) and len(plain.boxes[j])
        assert np.array_equal(both.images[i][..., 0], plain.images[j][..., 0])
    assert all(len(both.boxes[i]) == 0 for i in alone if both.is_template[i])


def test_frame_round_trip():
    f = Frame(640, 640, 448)
    assert f.to_original(f.to_model((100, 200, 140, 260))) == (100, 200, 140, 260)


def test_decode_reads_back_targets():
    """A head that outputs exactly its targets decodes to the original boxes and classes."""
    boxes = [torch.tensor([[40.0, 50.0, 80.0, 70.0], [150.0, 150.0, 190.0, 200.0]])]
    labels = [torch.tensor([2, 5])]
    t = build_targets(boxes, labels, 6, (14, 14), 16.0)
    def logit(p):
        return torch.log(p.clamp(1e-6, 1 - 1e-6) / (1 - p.clamp(1e-6, 1 - 1e-6)))

    out = {"heat": logit(t["heat"]), "offset": logit(t["offset"]), "size": t["size"]}
    dets = decode(out, 16.0, 0.5, 10)[0]
    assert sorted(k for k, _, _ in dets) == [2, 5]
    for k, _, box in dets:
        ref = boxes[0][labels[0].tolist().index(k)].tolist()
        assert np.allclose(box, ref, atol=1e-3)


def test_save_and_load_round_trip(vlm, tmp_path, boards):
    img = np.asarray(fuse(boards[0].test_path, boards[0].template_path, vlm.meta.input_size))[None]
    vlm.eval()
    before = vlm.spatial(img)["heat"]
    loaded = DefectVLM.load(vlm.save(tmp_path / "m"), quantize=False)
    assert torch.allclose(before, loaded.spatial(img)["heat"], atol=1e-5)


def _snapshot(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def _changed(before, module, prefix=""):
    return {n for n, p in module.named_parameters() if n.startswith(prefix) and not torch.equal(before[n], p.detach())}


def test_spatial_training_changes_vision_and_head_only(tmp_path, boards):
    from components.train.images import FusedSet
    from components.train.spatial import train_spatial

    cfg = tiny_cfg(tmp_path)
    vlm = new_model(cfg)
    before_model, before_head = _snapshot(vlm.model), _snapshot(vlm.head)
    data = FusedSet(boards[:4], cfg.data.classes, cfg.model.input_size)
    figures = train_spatial(vlm, data, cfg.train, tmp_path / "work")
    assert figures["steps"] >= 1
    assert _changed(before_head, vlm.head) == set(before_head)
    changed = _changed(before_model, vlm.model)
    assert any(n.startswith("model.visual.blocks") for n in changed)
    assert not any("language_model" in n for n in changed)


def test_sft_and_dpo_train_the_language_model_not_the_vision_tower(tmp_path, boards):
    from components.pipeline import RunLayout
    from components.train import stages

    cfg, run = tiny_cfg(tmp_path), RunLayout(tmp_path)
    stages.make_qa(boards[:4], cfg, run.dir("qa"))
    stages.run_spatial(boards[:4], cfg, run.dir("spatial"), "v")
    start = DefectVLM.load(run.model("spatial"), quantize=False)
    stages.run_sft(run.model("spatial"), boards[:4], run.dir("qa"), cfg, run.dir("sft"))
    after_sft = DefectVLM.load(run.model("sft"), quantize=False)
    stages.run_dpo(run.model("sft"), boards[:4], run.dir("qa"), cfg, run.dir("dpo"))
    after_dpo = DefectVLM.load(run.model("dpo"), quantize=False)

    def diff(a, b, part):
        pa, pb = dict(a.model.named_parameters()), dict(b.model.named_parameters())
        return {n for n in pa if part in n and not torch.equal(pa[n], pb[n])}

    assert diff(start, after_sft, "language_model")
    assert not diff(start, after_sft, "visual.blocks")
    assert diff(after_sft, after_dpo, "language_model.layers")  # the merged LoRA update
    assert not diff(after_sft, after_dpo, "visual")
