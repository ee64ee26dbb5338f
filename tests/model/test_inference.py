"""Asking the trained tiny model: answers always follow the grammar, fp32 and int8 alike."""
import json

import pytest
import torch

from components.model.constrained import ScanLogits
from components.model.regions import descriptors
from components.qa.grammar import Detection
from components.model.inference import Inspector
from components.qa.grammar import parse, resolve_scan
from components.train.stages import new_model
from tests.conftest import tiny_cfg

QUESTIONS = ["Where is the short circuit?", "How many spurs?", "Any pin-holes?", "Describe all defects.",
             "what's wrong with this board", "Any defects in the top left?"]


@pytest.mark.parametrize("int8", [False, True])
def test_answers_parse_and_carry_class_box_centre_confidence(tiny_model, boards, int8):
    inspector = Inspector.load(tiny_model / "int8" / "model", quantize=int8)
    assert inspector.vlm.meta.quantize == "int8"
    for q in QUESTIONS:
        r = inspector.ask(boards[0].test_path, q, boards[0].template_path)
        again = parse(r.answer_text)
        assert [(d.cls, d.box) for d in again.detections] == [(d.cls, d.box) for d in r.answer.detections]
        assert [d.conf for d in again.detections] == [round(d.conf, 2) for d in r.answer.detections]
        for d in r.answer.to_dict()["defects"]:
            assert set(d) == {"class", "box", "center", "confidence"} and 0 <= d["confidence"] <= 1
        assert json.dumps(r.to_dict())


def test_batched_answers_equal_single_answers(tiny_model, boards):
    inspector = Inspector.load(tiny_model / "int8" / "model", quantize=False)
    pairs = [(b.test_path, b.template_path) for b in boards[:3]] + [(boards[0].template_path, None)]
    batch = inspector.ask_batch(pairs, "Describe all defects.")
    single = [inspector.ask(img, "Describe all defects.", tmpl) for img, tmpl in pairs]
    assert [r.raw for r in batch] == [r.raw for r in single]


def test_empty_question_is_refused(tiny_model, boards):
    inspector = Inspector.load(tiny_model / "int8" / "model")
    with pytest.raises(ValueError, match="empty"):
        inspector.ask(boards[0].test_path, "  ")


def test_template_of_another_size_is_refused(tiny_model, boards, tmp_path):
    from PIL import Image

    small = tmp_path / "small.jpg"
    Image.open(boards[0].template_path).resize((320, 320)).save(small)
    with pytest.raises(ValueError, match="template is 320x320"):
        Inspector.load(tiny_model / "int8" / "model").ask(boards[0].test_path, "Any spurs?", small)


def test_constrained_decoding_always_yields_grammar(tmp_path):
    """Random logits under the scan processor still produce a parseable answer, one decision per region."""
    vlm = new_model(tiny_cfg(tmp_path))
    tok = vlm.processor.tokenizer
    regs = [Detection("spur", (1, 1, 5, 5), 0.5), Detection("open", (9, 9, 20, 20), 0.2)]
    descs = descriptors(regs, (640, 640))
    guard = ScanLogits(tok, tuple(vlm.meta.classes), [descs], prompt_len=0)
    torch.manual_seed(0)
    for _ in range(30):
        ids = torch.zeros((1, 0), dtype=torch.long)
        for _ in range(guard.max_new_tokens):
            nxt = guard(ids, torch.randn(1, len(tok))).argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], dim=1)
        assert ids[0, -1].item() == tok.eos_token_id
        answer = resolve_scan(tok.decode(ids[0], skip_special_tokens=True), regs)
        assert len(answer.detections) <= len(regs)
