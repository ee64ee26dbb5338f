"""The text-only language warm-up: it drops the picture, scores only the decided tokens,
and changes the language model but never the vision tower."""
import torch

from components.qa.grammar import ASK
from components.train.stages import new_model
from components.train.warmup import encode, length_batches, text_only, train_warmup, word_dropout
from tests.conftest import pcb_words, tiny_cfg

ROW = {
    "images": ["unused.png"],
    "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "question : any spurs ?"}]}],
    "completion": [{"role": "assistant", "content": [{"type": "text",
                   "text": "[ASK] spur [-] list any R1 tl spur [IN] s8 [YES] R2 br short [OUT] s2 [NO] [EOF]"}]}],
}


def test_rows_lose_the_picture_and_keep_the_text():
    (row,) = text_only([ROW])
    assert "images" not in row
    assert [c["type"] for c in row["prompt"][0]["content"]] == ["text"]
    assert row["completion"] == ROW["completion"]


def test_loss_covers_the_reading_and_decisions_only(tmp_path):
    vlm = new_model(tiny_cfg(tmp_path))
    (ids, labels, *_), = encode(vlm.processor, text_only([ROW]), pcb_words())
    tok = vlm.processor.tokenizer
    kept = tok.convert_ids_to_tokens(labels[labels != -100].tolist())
    assert kept == ["spur", "[-]", "list", "any", "[YES]", "[NO]"]
    assert tok.convert_tokens_to_ids(ASK) in ids.tolist()


def test_word_dropout_hides_only_words_that_do_not_say_what_is_asked(tmp_path):
    vlm = new_model(tiny_cfg(tmp_path))
    row = {**ROW, "prompt": [{"role": "user", "content": [
        {"type": "text", "text": "question : hey can you tell me how many spurs are in the top left ?"}]}]}
    (ids, _, droppable, _), = encode(vlm.processor, [row], pcb_words(), tuple(vlm.meta.classes))
    tok = vlm.processor.tokenizer
    assert tok.convert_ids_to_tokens(ids[droppable].tolist()) == ["hey", "can", "you", "tell", "me", "are", "in"]
    dropped = word_dropout(ids, droppable, 1.0, tok.unk_token_id, torch.Generator().manual_seed(0))
    assert (dropped[droppable] == tok.unk_token_id).all() and torch.equal(dropped[~droppable], ids[~droppable])
    assert torch.equal(word_dropout(ids, droppable, 0.0, tok.unk_token_id, torch.Generator()), ids)


def test_a_question_naming_nothing_asked_about_is_told_from_one_that_does(tmp_path):
    """An everyday request holds no key word (it gets the off-topic dropout); a defect question,
    or one about a thing on the board ("how many resistors"), holds one."""
    vlm = new_model(tiny_cfg(tmp_path))

    def names_nothing(text):
        row = {**ROW, "prompt": [{"role": "user", "content": [{"type": "text", "text": f"question : {text}"}]}]}
        (*_, nothing), = encode(vlm.processor, [row], pcb_words(), tuple(vlm.meta.classes))
        return nothing

    assert names_nothing("can you tell me what is the weather today ?")
    assert names_nothing("can you book me a meeting room ?")
    assert not names_nothing("can you tell me how many spurs ?")
    assert not names_nothing("anything wrong ?")
    assert not names_nothing("how many resistors are there ?")


def test_word_dropout_may_hide_the_words_in_front_of_a_class_naming_noun(tmp_path):
    """"tiny holes" -> "[UNK] holes" still asks for pin-holes; "broken traces" keeps "broken"
    ("trace" alone could be a short's), and nothing of an area is touched."""
    vlm = new_model(tiny_cfg(tmp_path))
    row = {**ROW, "prompt": [{"role": "user", "content": [
        {"type": "text", "text": "question : any tiny holes or broken traces in the top left ?"}]}]}
    (ids, _, droppable, _), = encode(vlm.processor, [row], pcb_words(), tuple(vlm.meta.classes))
    tok = vlm.processor.tokenizer
    assert tok.convert_ids_to_tokens(ids[droppable].tolist()) == ["any", "tiny", "or", "in"]


def test_warmup_trains_the_language_model_not_the_vision_tower(tmp_path):
    cfg = tiny_cfg(tmp_path)
    vlm = new_model(cfg)
    before = {n: p.detach().clone() for n, p in vlm.model.named_parameters()}
    figures = train_warmup(vlm, [ROW] * 4, cfg.train, cfg.line.words)
    after = dict(vlm.model.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert any("language_model.layers" in n for n in changed)
    assert not any("visual" in n for n in changed)
    assert figures["warmup_steps"] == cfg.train.warmup_steps and figures["warmup_loss"] > 0


def test_reading_rows_teach_the_reading_alone_and_train_with_the_rows(tmp_path):
    """A reading row is a question and the scan of a view with no region: its loss is the
    reading's four tokens; the warm-up takes them beside the full rows."""
    from components.config import QAConfig
    from components.qa.generate import reading_questions
    from components.train.lm_data import reading_rows

    cfg = tiny_cfg(tmp_path)
    vlm = new_model(cfg)
    questions = reading_questions(tuple(vlm.meta.classes), cfg.line.words, QAConfig(), 40, seed=0)
    assert questions == reading_questions(tuple(vlm.meta.classes), cfg.line.words, QAConfig(), 40, seed=0)  # deterministic
    assert len({q for q, _ in questions}) > 30 and any(r.area != "any" for _, r in questions)
    assert any(r.off for _, r in questions) and any(r.count for _, r in questions)
    rows = reading_rows(questions)
    tok = vlm.processor.tokenizer
    for (q, reading), (_, labels, *_) in zip(questions, encode(vlm.processor, text_only(rows), cfg.line.words), strict=True):
        assert tok.convert_ids_to_tokens(labels[labels != -100].tolist()) == reading.tokens(), q
    before = {n: p.detach().clone() for n, p in vlm.model.named_parameters()}
    figures = train_warmup(vlm, [ROW] * 4, cfg.train, cfg.line.words, reading=rows)
    assert figures["warmup_reading_rows"] == len(rows)
    assert any(not torch.equal(before[n], p) for n, p in vlm.model.named_parameters() if "language_model" in n)


def test_length_batches_pad_less_and_draw_every_row_at_random():
    import random

    lengths = [random.Random(i).randrange(10, 100) for i in range(400)]

    def padded(groups):
        it = length_batches(len(lengths), lengths, 16, groups, random.Random(0))
        batches = [next(it) for _ in range(100)]
        assert all(len(b) == 16 and len(set(b)) == 16 for b in batches)
        return batches, sum(16 * max(lengths[i] for i in b) for b in batches)

    plain, plain_pad = padded(1)
    grouped, grouped_pad = padded(8)
    assert grouped_pad < 0.8 * plain_pad
    assert len({i for b in grouped for i in b}) > 300  # not stuck on the short rows
    assert grouped == padded(8)[0]  # deterministic in the seed
    tiny = length_batches(5, [3, 1, 2, 5, 4], 16, 8, random.Random(0))
    assert sorted(next(tiny)) == [0, 1, 2, 3, 4]  # fewer rows than a batch: all of them
