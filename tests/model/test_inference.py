"""Asking the trained tiny model: answers always follow the grammar, fp32 and int8 alike."""
import json

import pytest
import torch

from components.model.constrained import ScanLogits
from components.model.inference import Inspector
from components.model.regions import descriptors
from components.qa.grammar import Detection, parse, resolve_scan
from components.train.stages import new_model
from tests.conftest import tiny_cfg

pytestmark = pytest.mark.model  # the session's tiny trained model (tests/conftest.py)

QUESTIONS = ["Where is the short circuit?", "How many spurs?", "Any pin-holes?", "Describe all defects.",
             "what's wrong with this board", "Any defects in the top left?"]


@pytest.mark.parametrize("int8", [False, True])
def test_answers_parse_and_carry_class_box_centre_confidence(tiny_model, boards, int8):
    inspector = Inspector.load(tiny_model.model("quantize"), quantize=int8)
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
    inspector = Inspector.load(tiny_model.model("quantize"), quantize=False)
    pairs = [(b.test_path, b.template_path) for b in boards[:3]] + [(boards[0].template_path, None)]
    batch = inspector.ask_batch(pairs, "Describe all defects.")
    single = [inspector.ask(img, "Describe all defects.", tmpl) for img, tmpl in pairs]
    assert [r.raw for r in batch] == [r.raw for r in single]


def _pictures(inspector, pairs):
    from components.model.fuse import fuse, open_gray

    return [fuse(open_gray(img), tmpl, inspector.vlm.meta.input_size) for img, tmpl in pairs]


def test_chunked_decoding_writes_what_generate_writes(tiny_model, boards):
    """The KV-cache loop that feeds forced tokens in chunks gives model.generate's text exactly:
    a batch whose rows have different numbers of regions (one none) and different questions
    (prompts of different lengths, left-padded)."""
    inspector = Inspector.load(tiny_model.model("quantize"), quantize=False)
    pairs = [(b.test_path, b.template_path) for b in boards[:3]] + [(boards[3].test_path, None)]
    pictures = _pictures(inspector, pairs)
    many = [Detection(c, (10 * i, 10 * i, 10 * i + 30, 10 * i + 20), 0.1 * i)
            for i, c in enumerate(["spur", "short", "open", "mousebite", "copper", "pin-hole"] * 2)]
    regions = [many[:8], many[:3], [], many[:5]]
    sizes = [(640, 640)] * 4
    same = ["question : describe all defects."] * 4
    mixed = ["question : any spurs?", "question : where is the short circuit on this board?",
             "question : how many defects?", "question : what is the weather?"]
    assert len(set(inspector._inputs(pictures, mixed)["attention_mask"].sum(-1).tolist())) > 1  # padded
    for texts in (same, mixed):
        fast = inspector._generate(pictures, texts, regions, sizes)
        assert [raw for raw, _ in fast] == inspector._generate_reference(pictures, texts, regions, sizes)
        for (raw, logprobs), regs in zip(fast, regions, strict=True):
            answer = resolve_scan(raw, regs, tuple(inspector.vlm.meta.classes))
            assert len(logprobs) == (0 if answer.out_of_scope else len(regs)) and all(lp <= 0 for lp in logprobs)
            assert raw.endswith("[EOF]") and len(answer.detections) <= len(regs)


def test_mixed_questions_in_one_batch_answer_like_single_asks(tiny_model, boards):
    inspector = Inspector.load(tiny_model.model("quantize"), quantize=False)
    pairs = [(b.test_path, b.template_path) for b in boards[:2]] + [(boards[2].test_path, None)]
    questions = ["Any spurs?", "Where is the short circuit on this board?", "How many defects?"]
    batch = inspector.ask_batch(pairs, questions)
    single = [inspector.ask(img, q, tmpl) for (img, tmpl), q in zip(pairs, questions, strict=True)]
    assert [r.raw for r in batch] == [r.raw for r in single]
    assert [len(r.decision_logprobs) for r in batch] == [0 if r.answer.out_of_scope else len(r.regions) for r in batch]
    flat = lambda results: [lp for r in results for lp in r.decision_logprobs]  # noqa: E731
    assert flat(batch) == pytest.approx(flat(single), abs=1e-4)
    with pytest.raises(ValueError, match="2 questions for 3 boards"):
        inspector.ask_batch(pairs, questions[:2])


def test_many_questions_about_one_board_encode_it_once_and_answer_like_single_asks(tiny_model, boards):
    inspector = Inspector.load(tiny_model.model("quantize"), quantize=False)
    visual, calls = inspector.vlm.model.model.visual, []
    hook = visual.register_forward_hook(lambda mod, args, out: calls.append(len(args[0])))
    try:
        many = inspector.ask_many(boards[0].test_path, boards[0].template_path, QUESTIONS)
    finally:
        hook.remove()
    single = [inspector.ask(boards[0].test_path, q, boards[0].template_path) for q in QUESTIONS]
    assert [r.raw for r in many] == [r.raw for r in single]
    # the spatial branch once, the language model's prefill once: both one picture's patches
    assert calls == [calls[0]] * 2


def test_empty_question_is_refused(tiny_model, boards):
    inspector = Inspector.load(tiny_model.model("quantize"))
    with pytest.raises(ValueError, match="empty"):
        inspector.ask(boards[0].test_path, "  ")


def test_template_of_another_size_is_refused(tiny_model, boards, tmp_path):
    from PIL import Image

    small = tmp_path / "small.jpg"
    Image.open(boards[0].template_path).resize((320, 320)).save(small)
    with pytest.raises(ValueError, match="template is 320x320"):
        Inspector.load(tiny_model.model("quantize")).ask(boards[0].test_path, "Any spurs?", small)


def test_constrained_decoding_always_yields_grammar(tmp_path):
    """Random logits under the scan processor still produce a parseable answer, one decision per region."""
    vlm = new_model(tiny_cfg(tmp_path))
    tok = vlm.processor.tokenizer
    regs = [Detection("spur", (1, 1, 5, 5), 0.5), Detection("open", (9, 9, 20, 20), 0.2)]
    guard = ScanLogits(tok, tuple(vlm.meta.classes), [len(regs)],
                       lambda row, reading: descriptors(regs, (640, 640), reading), prompt_len=0)
    torch.manual_seed(0)
    readings = set()
    for _ in range(60):
        ids = torch.zeros((1, 0), dtype=torch.long)
        for _ in range(guard.max_new_tokens):
            nxt = guard(ids, torch.randn(1, len(tok))).argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], dim=1)
        guard._bodies.clear()  # a new sequence: its reading decides its descriptors anew
        assert ids[0, -1].item() == tok.eos_token_id
        answer = resolve_scan(tok.decode(ids[0], skip_special_tokens=True), regs)
        assert len(answer.detections) <= len(regs) and answer.asked is not None
        assert not (answer.out_of_scope and answer.detections)
        readings.add(answer.asked)
    assert len(readings) > 10  # random logits reach many readings, each decoded within the grammar


def test_int8_quantizes_the_language_model_and_keeps_regions_independent_of_the_batch(tiny_model, boards):
    """Boxes must not depend on which other boards share a served batch: the vision side stays fp32."""
    inspector = Inspector.load(tiny_model.model("quantize"), quantize=True)
    from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

    def int8_layers(module):
        return sum(isinstance(m, Int8Linear) for m in module.modules())

    assert int8_layers(inspector.vlm.model.model.language_model) > 0
    assert int8_layers(inspector.vlm.model.model.visual) == 0
    pairs = [(b.test_path, b.template_path) for b in boards[:3]]
    alone = inspector.ask_batch(pairs[:1], "Describe all defects.")[0]
    batched = inspector.ask_batch(pairs, "Describe all defects.")[0]
    assert [(r.cls, r.box) for r in alone.regions] == [(r.cls, r.box) for r in batched.regions]
    assert [r.conf for r in alone.regions] == pytest.approx([r.conf for r in batched.regions], abs=1e-5)
