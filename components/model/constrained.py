"""Grammar-constrained decoding of the scan form (see components/qa/grammar.py).

Step by step: after [ASK] the model may write only a class or `all`, then only `count`
or `list`; then each region's descriptor tokens are forced, and at each decision only
[YES], a class or [NO] is allowed; after the last region, [EOF] and the end of turn. The answer
therefore always parses and always has exactly one decision per region. Each row of a
batch has its own regions; a row that has finished is held on the end-of-turn token.
"""
from __future__ import annotations

import torch
from transformers import LogitsProcessor

from components.qa.grammar import ALL, ASK, MODES, NO, YES


class ScanLogits(LogitsProcessor):
    def __init__(self, tokenizer, classes: tuple[str, ...], rows: list[list[list[str]]], prompt_len: int):
        """rows: for each batch row, its regions' descriptor tokens."""
        ids = tokenizer.convert_tokens_to_ids
        self.prompt_len = prompt_len
        self.eos = tokenizer.eos_token_id
        choice_cls = [ids(c) for c in classes]
        head: list[int | list[int]] = [ids(ASK), choice_cls + [ids(ALL)], [ids(m) for m in MODES]]
        self.steps = []
        self.decisions: list[list[int]] = []
        """For each row, the positions (in generated tokens) of its regions' decisions."""
        for descs in rows:
            steps, decisions = list(head), []
            for desc in descs:
                # An int is a forced token, a list is a choice.
                steps += [ids(tok) for tok in desc]
                decisions.append(len(steps))
                steps.append(choice_cls + [ids(YES), ids(NO)])
            self.steps.append(steps + [ids("[EOF]"), self.eos])
            self.decisions.append(decisions)
        self.max_new_tokens = max(len(s) for s in self.steps)

    def allowed(self, position: int, row: int = 0) -> list[int]:
        steps = self.steps[row]
        step = steps[position] if position < len(steps) else self.eos
        return step if isinstance(step, list) else [step]

    def forced(self, position: int) -> list[int] | None:
        """The token each row must write at `position`, or None when some row has a choice there."""
        out = [self.allowed(position, row) for row in range(len(self.steps))]
        return None if any(len(a) > 1 for a in out) else [a[0] for a in out]

    def mask(self, position: int, scores: torch.Tensor) -> torch.Tensor:
        """0 where a row may write a token at `position`, -inf elsewhere; shaped like scores (rows, vocab)."""
        mask = torch.full_like(scores, float("-inf"))
        for row in range(scores.shape[0]):
            mask[row, self.allowed(position, row)] = 0.0
        return mask

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return scores + self.mask(input_ids.shape[1] - self.prompt_len, scores)
