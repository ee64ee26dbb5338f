"""Grammar-constrained decoding: at each step only tokens the reference grammar allows.

    [COUNT] n? ( ([DEFECT] class [REF] Rk)+ | [NONE] class? ) [EOF] <|im_end|>
with k limited to the regions actually proposed, so a parse failure cannot happen.
"""
from __future__ import annotations

import torch
from transformers import LogitsProcessor

from components.qa.grammar import REF_TOKEN, region_name


class GrammarLogits(LogitsProcessor):
    def __init__(self, tokenizer, classes: tuple[str, ...], n_regions: int, prompt_len: int):
        ids = tokenizer.convert_tokens_to_ids
        self.prompt_len = prompt_len
        self.t = {name: ids(name) for name in ("[COUNT]", "[DEFECT]", "[NONE]", "[EOF]", REF_TOKEN)}
        self.eos = tokenizer.eos_token_id
        self.classes = [ids(c) for c in classes]
        self.regions = [ids(region_name(i)) for i in range(n_regions)]
        self.numbers = [ids(str(i)) for i in range(n_regions + 1)]
        self.kind: dict[int, str] = {v: k for k, v in self.t.items()}
        self.kind.update({c: "class" for c in self.classes})
        self.kind.update({r: "region" for r in self.regions})
        self.kind.update({n: "number" for n in self.numbers})

    def allowed(self, generated: list[int]) -> list[int]:
        """Token ids allowed after the tokens generated so far."""
        t, items = self.t, ([self.t["[DEFECT]"]] if self.regions else [])
        if not generated:
            return [t["[COUNT]"], t["[NONE]"]] + items
        prev = self.kind.get(generated[-1], "")
        before = self.kind.get(generated[-2], "") if len(generated) > 1 else ""
        if prev == "[COUNT]":
            return self.numbers
        if prev == "number":
            return [t["[NONE]"]] + items
        if prev == "[DEFECT]":
            return self.classes
        if prev == "class":
            return [t["[EOF]"]] if before == "[NONE]" else [t[REF_TOKEN]]
        if prev == REF_TOKEN:
            return self.regions
        if prev == "region":
            return [t["[EOF]"]] + items
        if prev == "[NONE]":
            return self.classes + [t["[EOF]"]]
        return [self.eos]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        mask = torch.full_like(scores, float("-inf"))
        for row, ids in enumerate(input_ids):
            mask[row, self.allowed(ids[self.prompt_len:].tolist())] = 0.0
        return scores + mask
