"""Grammar-constrained decoding of the scan form (see components/qa/grammar.py).

Step by step: after [ASK] the model may write only a class or `all`, then only `count`
or `list`; then each region's descriptor tokens are forced, and at each decision only a
class or [NO] is allowed; after the last region, [EOF] and the end of turn. The answer
therefore always parses and always has exactly one decision per region.
"""
from __future__ import annotations

import torch
from transformers import LogitsProcessor

from components.qa.grammar import ALL, ASK, MODES, NO


class ScanLogits(LogitsProcessor):
    def __init__(self, tokenizer, classes: tuple[str, ...], descriptors: list[list[str]], prompt_len: int):
        ids = tokenizer.convert_tokens_to_ids
        self.prompt_len = prompt_len
        self.classes = [ids(c) for c in classes]
        # The whole answer as a list of steps: an int is forced, a list is a choice.
        steps: list[int | list[int]] = [ids(ASK), self.classes + [ids(ALL)], [ids(m) for m in MODES]]
        for desc in descriptors:
            steps += [ids(tok) for tok in desc] + [self.classes + [ids(NO)]]
        steps += [ids("[EOF]"), tokenizer.eos_token_id]
        self.steps = steps
        self.max_new_tokens = len(steps)

    def allowed(self, position: int) -> list[int]:
        step = self.steps[min(position, len(self.steps) - 1)]
        return step if isinstance(step, list) else [step]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        mask = torch.full_like(scores, float("-inf"))
        position = input_ids.shape[1] - self.prompt_len
        mask[:, self.allowed(position)] = 0.0
        return scores + mask
