"""The wafer line's answer grammar, its QA / preference pairs and its language model (tiny, trained here)."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from components import config
from components.qa.wafer_generate import hide_name, preference_rows, qa_rows
from components.qa.wafer_grammar import FIELDS, Reading, answer_of, parse, parse_reading, render, sentence
from components.qa.wafer_measure import measure
from components.qa.wafer_vocab import KINDS, OFF_KIND, UNKNOWN_WORD
from components.train.wafer_lm import new_lm, train_dpo, train_sft

CFG = config.load(None, line="wafer")
LABELS = CFG.data.classes


def _probs(top: str, p: float = 0.9) -> dict[str, float]:
    rest = (1 - p) / (len(LABELS) - 1)
    return {lb: (p if lb == top else rest) for lb in LABELS}


def _centre_map() -> np.ndarray:
    g = np.zeros((40, 40), np.uint8)
    yy, xx = np.mgrid[:40, :40]
    r = np.hypot(yy - 19.5, xx - 19.5)
    g[r < 19] = 128
    g[r < 5] = 255
    return g


@pytest.mark.parametrize("kind", list(FIELDS))
def test_every_answer_the_generator_writes_parses_back(kind):
    m = measure(_centre_map())
    asked = "Scratch" if kind == "presence" else ""
    a = answer_of(Reading(kind, asked, "Center") if kind != OFF_KIND else Reading(OFF_KIND), _probs("Center"), m)
    assert parse(render(a), LABELS) == a
    assert sentence(a, CFG.line.words)


def test_answers_refer_to_measured_numbers_and_calibrated_confidence():
    m = measure(_centre_map())
    a = answer_of(Reading("location", "", "Center"), _probs("Center", 0.83), m)
    assert (a.loc, a.fail, a.dies, a.conf) == ("centre", m.failing, m.dies, 0.83)
    no = answer_of(Reading("presence", "Scratch", "Center"), _probs("Center", 0.83), m)
    assert no.found is False and no.conf == pytest.approx(1 - 0.02125, abs=0.01)
    unknown = answer_of(Reading("presence", "", "Center"), _probs("Center", 0.83), m)
    assert (unknown.asked, unknown.found, unknown.pattern, unknown.conf) == ("", None, "Center", 0.83)
    assert parse(render(unknown), LABELS) == unknown
    said = sentence(unknown, CFG.line.words)
    assert "not a pattern name I know" in said and "center pattern (confidence 0.83)" in said and "Yes" not in said
    cause = answer_of(Reading("cause", "", "Center"), _probs("Center"), m)
    assert "hypotheses, not findings" in sentence(cause, CFG.line.words)


def test_a_bad_answer_or_reading_is_refused_saying_what_is_wrong():
    with pytest.raises(ValueError, match=r"field \[PATTERN\] 'Blob'"):
        parse("[KIND] pattern [PATTERN] Blob [CONF] 0.50 [EOF]", LABELS)
    with pytest.raises(ValueError, match="a pattern answer has fields"):
        parse("[KIND] pattern [CONF] 0.50 [EOF]", LABELS)
    with pytest.raises(ValueError, match="not a wafer reading"):
        parse_reading("[ASK] weather - [ANS] None [EOF]", LABELS)


def test_qa_rows_cover_every_kind_and_preference_pairs_reject_a_pattern_the_map_does_not_show():
    maps = [("None", _probs("Loc", 0.6)), ("Center", _probs("Center")), ("Scratch", _probs("Loc", 0.7))] * 30
    rows = qa_rows(maps, CFG.line.words, CFG.line.items, 3, 0.1, 3, 10, seed=0)
    assert {r["kind"] for r in rows} == set(KINDS) | {OFF_KIND}
    pairs = preference_rows(rows, maps, seed=0)
    why = {p["why"] for p in pairs}
    assert why == {"invented", "overconfident", "wrong"}
    for p in pairs:
        assert parse_reading("[ASK]" + p["chosen"], LABELS) != parse_reading("[ASK]" + p["rejected"], LABELS)
    invented = next(p for p in pairs if p["why"] == "invented")
    assert invented["rejected"].endswith("Loc [EOF]") and invented["chosen"].endswith("None [EOF]")


def test_the_language_model_learns_to_read_questions_and_dpo_changes_it(tmp_path):
    cfg = config.load(None, line="wafer", overrides=["wafer.sft_steps=250", "wafer.dpo_steps=10", "wafer.dpo_batch=8"]).wafer
    rng = random.Random(0)
    maps = [(lb, _probs(lb, rng.uniform(0.6, 0.99))) for lb in LABELS for _ in range(40)]
    lm = new_lm(LABELS, CFG.line.words, CFG.line.items, cfg)
    rows = qa_rows(maps, CFG.line.words, CFG.line.items, 2, 0.05, 3, 10, seed=0, normalize=lambda q: q.lower())
    train_sft(lm, rows, cfg, tmp_path / "sft")
    assert lm.read("How many dies failed?", _probs("Center")).kind == "count"
    assert lm.read("Where are the failing dies?", _probs("Edge-Ring")) == Reading("location", "", "Edge-Ring")
    assert lm.read("Is there a scratch?", _probs("Scratch")) == Reading("presence", "Scratch", "Scratch")
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    summary = train_dpo(lm, preference_rows(rows, maps, seed=0), cfg, tmp_path / "dpo")
    assert summary["dpo_pairs"] > 0
    assert any(not torch.equal(before[k], v) for k, v in lm.model.state_dict().items())
    again = type(lm).load(lm.save(tmp_path / "lm"))
    assert again.read("What pattern is this?", _probs("Donut")) == lm.read("What pattern is this?", _probs("Donut"))


def test_a_pattern_name_is_hidden_in_part_or_wholly_and_an_unknown_one_asks_about_no_pattern():
    """An unknown name is read as asking about no label: read as the likeliest pattern, "is there a
    bullseye?" on an edge-ring map would answer "Yes, there is an edge ring"."""
    rng = random.Random(0)
    for _ in range(50):
        s, p = hide_name(("local edge failure", "local edge failures"), 0.9, rng)
        assert s.split().count(UNKNOWN_WORD) == p.split().count(UNKNOWN_WORD) < 3
    maps = [("Scratch", _probs("Loc", 0.7)), ("None", _probs("None", 0.8) | {"Donut": 0.1})] * 40
    rows = qa_rows(maps, CFG.line.words, CFG.line.items, 3, 0.0, 3, 10, seed=0, unknown_name_share=1.0)
    presence = [r for r in rows if r["kind"] == "presence"]
    assert presence and all(UNKNOWN_WORD in r["prompt"] for r in presence)
    for r in presence:
        reading = parse_reading("[ASK]" + r["completion"], LABELS)
        assert (reading.asked, reading.decided) == ("", maps[r["map"]][0])


def test_a_kind_floor_reads_an_unclear_question_as_a_pattern_question():
    lm = new_lm(LABELS, CFG.line.words, CFG.line.items, CFG.wafer)
    lm.meta.kind_floor = 1.0
    assert lm.read("xqzjv xqzjv", _probs("Center")).kind == "pattern"


def test_a_batch_of_questions_reads_as_each_question_alone():
    """Left padding and position ids: a short prompt beside long ones reads as it does alone."""
    lm = new_lm(LABELS, CFG.line.words, CFG.line.items, CFG.wafer)
    questions = ["How many dies failed?", "Is there a scratch on this wafer, near the edge or anywhere?", "What pattern?",
                 "Where are the failing dies?"]
    probs = [_probs(lb) for lb in ("Center", "Scratch", "Donut", "Edge-Ring")]
    assert lm.read_batch(questions, probs, batch=3) == [lm.read(q, p) for q, p in zip(questions, probs, strict=True)]
    padded = lm.tokenizer(questions, padding=True).input_ids
    assert len({len(ids) for ids in padded}) == 1 and len({len(lm.tokenizer(q).input_ids) for q in questions}) > 1
