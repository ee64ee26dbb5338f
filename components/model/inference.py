"""Ask the model a question about a board: the one code path used by `ask`, evaluation,
the MLflow pyfunc and the web service.

1. fuse the board with its template into the model's input picture;
2. the spatial branch proposes regions (class, box, score) from the vision features;
3. the language model reads the picture and the question, says what is asked (a class or
   all, counted or listed), then walks the regions (their descriptors are forced tokens)
   deciding for each: report it as a class, or [NO] — under grammar-constrained decoding;
4. reported regions keep their boxes (original pixels) and calibrated confidences,
   giving the full answer grammar.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from components.model.constrained import ScanLogits
from components.model.fuse import Frame, fuse, open_gray
from components.model.regions import calibrate, descriptors, prompt_text, propose
from components.model.vlm import DefectVLM
from components.qa.grammar import Answer, Detection, render, resolve_scan


@dataclass
class InspectResult:
    answer: Answer
    answer_text: str
    raw: str
    """What the language model wrote (scan form)."""
    regions: list[Detection] = field(default_factory=list)
    latency_s: float = 0.0

    def to_dict(self) -> dict:
        return {"answer_text": self.answer_text, **self.answer.to_dict(), "latency_s": round(self.latency_s, 4)}


class Inspector:
    def __init__(self, vlm: DefectVLM):
        self.vlm = vlm
        self.tok = vlm.processor.tokenizer

    @classmethod
    def load(cls, folder: str | Path, quantize: bool | None = None) -> "Inspector":
        return cls(DefectVLM.load(folder, quantize=quantize))

    @property
    def version_info(self) -> dict:
        return {"dataset_version": self.vlm.meta.dataset_version, "quantize": self.vlm.meta.quantize}

    @torch.no_grad()
    def ask(self, image: str | Path | Image.Image, question: str,
            template: str | Path | Image.Image | None = None) -> InspectResult:
        """Answer one question about one board (and its template, when given)."""
        return self.ask_batch([(image, template)], question)[0]

    @torch.no_grad()
    def ask_batch(self, boards: list[tuple], question: str) -> list[InspectResult]:
        """The same question about several (board, template-or-None) pairs in one generate
        call; each result's latency is the batch time divided by the batch size."""
        if not question or not question.strip():
            raise ValueError("the question is empty")
        start = time.perf_counter()
        meta = self.vlm.meta
        pictures, frames, sizes = [], [], []
        for image, template in boards:
            board = open_gray(image)
            pictures.append(fuse(board, template, meta.input_size))
            frames.append(Frame(*board.size, meta.input_size))
            sizes.append(board.size)
        # The language model was trained on raw head scores; users get calibrated ones.
        regions = propose(self.vlm, np.stack([np.asarray(p) for p in pictures]), frames)
        raws = self._generate(pictures, prompt_text(question), [descriptors(r, s) for r, s in zip(regions, sizes)])
        each = (time.perf_counter() - start) / len(boards)
        results = []
        for raw, regs in zip(raws, regions):
            calibrated = [Detection(r.cls, r.box, calibrate(r.conf, meta.calibration)) for r in regs]
            answer = resolve_scan(raw, calibrated, tuple(meta.classes))
            results.append(InspectResult(answer, render(answer), raw, calibrated, each))
        return results

    def _generate(self, pictures: list[Image.Image], text: str, descs: list[list[list[str]]]) -> list[str]:
        msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
        prompt = self.vlm.processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        # Same question and picture size: every prompt has the same length, so no padding.
        inputs = self.vlm.processor(text=[prompt] * len(pictures), images=pictures, return_tensors="pt")
        n = inputs["input_ids"].shape[1]
        guard = ScanLogits(self.tok, tuple(self.vlm.meta.classes), descs, n)
        out = self.vlm.model.generate(**inputs, max_new_tokens=guard.max_new_tokens, do_sample=False,
                                      logits_processor=[guard], eos_token_id=self.tok.eos_token_id,
                                      pad_token_id=self.tok.pad_token_id)
        return [self.tok.decode(row[n:], skip_special_tokens=True).strip() for row in out]
