"""Grammar-constrained decoding of the scan form (see components/qa/grammar.py).

Step by step: after [ASK] the model may write only a reading (a class, `all` or [OFF]; a
second class or [-]; `count` or `list`; an area); then each region's descriptor tokens are
forced (its [IN]/[OUT] token computed from that reading), and at each decision only [YES],
a class or [NO] is allowed; after the last region, [EOF] and the end of turn. The answer
therefore always parses and always has exactly one decision per region. What is allowed
next is a function of what the row has written so far, so each row of a batch follows its
own reading; a row that has finished is held on the end-of-turn token.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import LogitsProcessor

from components.qa.grammar import ALL, AREA_TOKENS, ASK, HEADER_LEN, MODES, NO, NONE2, OFF, YES, Reading

Describe = Callable[[int, Reading], list[list[str]]]
"""(row, reading) -> that row's region descriptors under that reading."""


class ScanLogits(LogitsProcessor):
    def __init__(self, tokenizer, classes: tuple[str, ...], n_regions: list[int], describe: Describe, prompt_len: int):
        """n_regions: regions per batch row; describe: their descriptor tokens once the reading is known."""
        self.ids = tokenizer.convert_tokens_to_ids
        self.tok = tokenizer
        self.classes = classes
        self.describe = describe
        self.prompt_len = prompt_len
        self.eos = tokenizer.eos_token_id
        self.cls_ids = [self.ids(c) for c in classes]
        self.decision_ids = self.cls_ids + [self.ids(YES), self.ids(NO)]
        self.max_new_tokens = HEADER_LEN + max([6 * n for n in n_regions] or [0]) + 2
        self._bodies: dict[int, list[int | None]] = {}

    def _header(self, position: int, written: list[int]) -> list[int]:
        ids = self.ids
        if position == 0:
            return [ids(ASK)]
        if position == 1:
            return self.cls_ids + [ids(ALL), ids(OFF)]
        first = written[1]
        closed = first in (ids(ALL), ids(OFF))
        if position == 2:
            return [ids(NONE2)] if closed else [c for c in self.cls_ids if c != first] + [ids(NONE2)]
        if position == 3:
            return [ids(MODES[1])] if first == ids(OFF) else [ids(m) for m in MODES]
        return [ids(AREA_TOKENS[0])] if first == ids(OFF) else [ids(a) for a in AREA_TOKENS]

    def reading(self, written: list[int]) -> Reading:
        toks = self.tok.convert_ids_to_tokens(written[1:HEADER_LEN])
        return Reading.from_tokens(toks, self.classes)

    def _body(self, row: int, written: list[int]) -> list[int | None]:
        """The row's tokens after its reading; None marks a decision."""
        if row not in self._bodies:
            reading = self.reading(written)
            body: list[int | None] = []
            for desc in ([] if reading.off else self.describe(row, reading)):
                body += [self.ids(t) for t in desc] + [None]
            self._bodies[row] = body + [self.ids("[EOF]"), self.eos]
        return self._bodies[row]

    def allowed(self, row: int, written: list[int]) -> list[int]:
        """Tokens row may write next, given what it has written."""
        position = len(written)
        if position < HEADER_LEN:
            return self._header(position, written)
        body = self._body(row, written)
        k = position - HEADER_LEN
        if k >= len(body):
            return [self.eos]
        return self.decision_ids if body[k] is None else [body[k]]

    def is_decision(self, row: int, written: list[int]) -> bool:
        k = len(written) - HEADER_LEN
        return k >= 0 and k < len(body := self._body(row, written)) and body[k] is None

    def steps(self, row: int, written: list[int]) -> int:
        """How many of `written` belong to the row's scan (the rest is end-of-turn padding)."""
        return HEADER_LEN + len(self._body(row, written)) if len(written) >= HEADER_LEN else self.max_new_tokens

    def mask(self, allowed: list[list[int]], scores: torch.Tensor) -> torch.Tensor:
        """0 where a row may write a token, -inf elsewhere; shaped like scores (rows, vocab)."""
        mask = torch.full_like(scores, float("-inf"))
        for row, ok in enumerate(allowed):
            mask[row, ok] = 0.0
        return mask

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        written = input_ids[:, self.prompt_len:].tolist()
        return scores + self.mask([self.allowed(r, w) for r, w in enumerate(written)], scores)
