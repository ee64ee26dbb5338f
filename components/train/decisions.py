"""Does the language model's per-region decision follow the question? Per question kind, on
QA pairs of boards it never trained on: the accuracy of the reading and of the decisions,
teacher-forced (the true scan fed, the model's argmax at each chosen token) and in free
decoding (the scan the model writes itself). Decisions are split by their target: a region
that answers the question (report it) and one that does not ([NO]).

`defectqa decisions --model DIR --data DIR` prints one JSON line per kind.
"""
from __future__ import annotations

from collections import defaultdict

import torch
from tqdm import tqdm

from components.qa.grammar import ASK, HEADER_LEN, NO, read_scan


def _rows(vlm, samples, cfg):
    """(QA pair, view, sft row) for every pair of the boards, regions proposed as served."""
    from components.model.tokenizer import plain_words
    from components.qa.generate import generate_qa
    from components.train.lm_data import region_views, sft_rows
    from components.train.stages import image_sizes

    views = region_views(vlm, samples, vlm.meta.input_size, cfg.eval.iou)
    pairs = [p for p in generate_qa(samples, cfg.qa, cfg.data.classes, cfg.line.words, image_sizes(samples), cfg.line.items)
             if (p.sample_id, p.source) in views]
    words = plain_words(vlm.processor.tokenizer)
    return [(p, views[(p.sample_id, p.source)], row) for p, row in
            zip(pairs, sft_rows(pairs, views, words), strict=False)]


@torch.no_grad()
def teacher_forced(vlm, qa, row) -> tuple[list[bool], list[tuple[bool, bool]]]:
    """(reading tokens right, [(decision right, target reports the region)]) of one row."""
    from components.model.tokenizer import SCORE_TOKENS

    proc, tok = vlm.processor, vlm.processor.tokenizer
    text = proc.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
    inputs = proc(text=[text], images=row["images"], return_tensors="pt")
    logits = vlm.model(**inputs).logits[0]
    ids = inputs["input_ids"][0].tolist()
    ask = ids.index(tok.convert_tokens_to_ids(ASK))
    scores, no = set(tok.convert_tokens_to_ids(SCORE_TOKENS)), tok.convert_tokens_to_ids(NO)
    predicted = logits.argmax(-1).tolist()  # predicted[i] is the guess for ids[i + 1]
    reading = [predicted[ask + k - 1] == ids[ask + k] for k in range(1, HEADER_LEN)]
    decisions = [(predicted[i - 1] == ids[i], ids[i] != no) for i in range(ask + HEADER_LEN, len(ids))
                 if ids[i - 1] in scores]
    return reading, decisions


def measure(inspector, samples, cfg) -> dict[str, dict]:
    """Per kind: reading and decision accuracies, teacher-forced and free."""
    from components.train.lm_data import decisions_for

    vlm = inspector.vlm
    by_id = {s.sample_id: s for s in samples}
    acc: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for qa, view, row in tqdm(_rows(vlm, samples, cfg), desc="decisions", unit="question"):
        a = acc[qa.kind]
        reading, decisions = teacher_forced(vlm, qa, row)
        a["tf_reading"].append(all(reading))
        for right, reports in decisions:
            a["tf_report" if reports else "tf_no"].append(right)
        s = by_id[qa.sample_id]
        raw = inspector.ask(s.test_path if qa.source == "test" else s.template_path, qa.question, s.template_path).raw
        read_right = read_scan(raw, vlm.meta.classes) == qa.reading
        a["free_reading"].append(read_right)
        written = raw.split()[HEADER_LEN:-1]
        if read_right:  # same reading, so the same regions are decided
            for target, decided in zip(decisions_for(qa, view), written[5::6], strict=False):
                a["free_report" if target != NO else "free_no"].append(decided == target)
    return {kind: {k: round(sum(v) / len(v), 4) if v else None for k, v in a.items()} | {"n": len(a["tf_reading"])}
            for kind, a in sorted(acc.items())}
