"""Ask the model a question about a board: the one code path used by `ask`, evaluation,
the MLflow pyfunc and the web service.

1. fuse the board with its template into the model's input picture;
2. the spatial branch proposes regions (class, box, score) from the vision features;
3. the language model reads the picture and the question, says what is asked (a class or
   all, counted or listed), then walks the regions (their descriptors are forced tokens)
   deciding for each: report it as a class, or [NO] — under grammar-constrained decoding.
   What it read (classes, count or list, area, or "not about defects") is the scan's head,
   and each region's descriptor says whether the region is in the area it read ([IN]/[OUT]);
   the answer keeps the asked classes among the regions it decided are defects.
   Forced tokens need no choice, so each run of them is fed in one forward call on the KV
   cache: a scan of n regions takes n + 5 forward calls (prompt and reading included)
   (`_generate`; the plain `model.generate` path, `_generate_reference`, writes the same text);
4. reported regions keep their boxes (original pixels) and calibrated confidences,
   giving the full answer grammar.
"""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from components.model.constrained import ScanLogits
from components.model.fuse import Frame, fuse, open_gray
from components.model.regions import calibrate, descriptors, prompt_text, propose, propose_stages
from components.model.tokenizer import plain_words
from components.model.vlm import DefectVLM
from components.qa.grammar import IN, NONE2, OFF, OUT, Answer, Detection, render, resolve_scan
from components.qa.sentence import sentence

SCAN_TOKENS = (IN, OUT, OFF, NONE2)
"""Tokens of the scan form (grammar.py) a model made before it does not know."""


@dataclass
class InspectResult:
    answer: Answer
    answer_text: str
    raw: str
    """What the language model wrote (scan form)."""
    regions: list[Detection] = field(default_factory=list)
    latency_s: float = 0.0
    decision_logprobs: list[float] = field(default_factory=list)
    """One per region: log-probability of the model's decision among the allowed ones ([YES], [NO], classes)."""
    message: str = ""
    """The answer as a sentence in the model's line's words (`Inspector.says`); empty: the default line's."""

    def to_dict(self) -> dict:
        out = {"answer_text": self.answer_text, **self.answer.to_dict(), "latency_s": round(self.latency_s, 4)}
        return {**out, "message": self.message} if self.message else out


class Inspector:
    def __init__(self, vlm: DefectVLM):
        self.vlm = vlm
        self.tok = vlm.processor.tokenizer
        # Whether the model takes a ready picture encoding (Qwen3-VL does), so that several
        # questions about one board encode its picture once (_Scan one_picture).
        self._encodes_once = "mm_encoder_outputs" in inspect.signature(vlm.model.forward).parameters
        self.words = plain_words(self.tok)
        missing = [t for t in SCAN_TOKENS if t not in self.tok.get_vocab()]
        if missing:
            raise ValueError(f"this model's tokenizer lacks the scan tokens {missing}: it was trained for an older "
                             "answer form; retrain it (defectqa retrain) to serve it")

    @classmethod
    def load(cls, folder: str | Path, quantize: bool | None = None) -> Inspector:
        return cls(DefectVLM.load(folder, quantize=quantize))

    @property
    def version_info(self) -> dict:
        return {"dataset_version": self.vlm.meta.dataset_version, "quantize": self.vlm.meta.quantize}

    def says(self, answer: Answer) -> str:
        """The answer as a person reads it, classes and the thing inspected in the model's line's words."""
        meta = self.vlm.meta
        return sentence(answer, meta.words or None, tuple(meta.items) or None)

    @torch.no_grad()
    def ask(self, image: str | Path | Image.Image, question: str,
            template: str | Path | Image.Image | None = None) -> InspectResult:
        """Answer one question about one board (and its template, when given)."""
        return self.ask_batch([(image, template)], question)[0]

    @torch.no_grad()
    def ask_batch(self, boards: list[tuple], question: str | list[str]) -> list[InspectResult]:
        """Several (board, template-or-None) pairs in one batch: one question for all, or one
        question per pair. Each result's latency is the batch time divided by the batch size."""
        questions = self._questions(question, len(boards))
        start = time.perf_counter()
        pictures, sizes, regions = self._propose(boards)
        return self._answers(pictures, sizes, regions, [t is not None for _, t in boards], questions, start)

    @torch.no_grad()
    def ask_many(self, image, template, questions: list[str]) -> list[InspectResult]:
        """Several questions about one board: its regions are proposed once, then every question
        is read and decided in one batch. Latency is the batch time divided by the questions."""
        questions = self._questions(questions, len(questions))
        start = time.perf_counter()
        pictures, sizes, regions = self._propose([(image, template)])
        n = len(questions)
        return self._answers(pictures * n, sizes * n, regions * n, [template is not None] * n, questions, start)

    def _questions(self, question: str | list[str], n: int) -> list[str]:
        questions = [question] * n if isinstance(question, str) else list(question)
        if len(questions) != n:
            raise ValueError(f"{len(questions)} questions for {n} boards")
        if any(not q or not q.strip() for q in questions):
            raise ValueError("the question is empty")
        return questions

    def _answers(self, pictures, sizes, regions, with_template: list[bool], questions: list[str],
                 start: float) -> list[InspectResult]:
        scans = self._generate(pictures, [prompt_text(q, self.words) for q in questions], regions, sizes)
        each = (time.perf_counter() - start) / len(questions)
        results = []
        for (raw, logprobs), regs, template in zip(scans, regions, with_template, strict=True):
            calibrated = self._calibrated(regs, template)
            answer = resolve_scan(raw, calibrated, tuple(self.vlm.meta.classes))
            results.append(InspectResult(answer, render(answer), raw, calibrated, each, logprobs, self.says(answer)))
        return results

    @torch.no_grad()
    def regions_batch(self, boards: list[tuple]) -> list[list[Detection]]:
        """What the spatial branch and refiner see on each (board, template-or-None) pair, any
        class, calibrated confidences: the regions the language model would decide on."""
        return [self._calibrated(regs, template is not None)
                for regs, (_, template) in zip(self._propose(boards)[2], boards, strict=True)]

    def stage_regions(self, boards: list[tuple]) -> list[dict[str, list[Detection]]]:
        """Per (board, template-or-None) pair, what each step of the spatial branch keeps (raw
        scores): {"candidates": the head's peaks, "regions": after the refiner}; see regions.propose_stages."""
        pictures, frames, _ = self._fused(boards)
        stages = propose_stages(self.vlm, np.stack([np.asarray(p) for p in pictures]), frames)
        return [{k: v[i] for k, v in stages.items()} for i in range(len(boards))]

    def _fused(self, boards: list[tuple]) -> tuple[list[Image.Image], list[Frame], list[tuple[int, int]]]:
        meta = self.vlm.meta
        pictures, frames, sizes = [], [], []
        for image, template in boards:
            board = open_gray(image)
            pictures.append(fuse(board, template, meta.input_size))
            frames.append(Frame(*board.size, meta.input_size))
            sizes.append(board.size)
        return pictures, frames, sizes

    def _propose(self, boards: list[tuple]) -> tuple[list[Image.Image], list[tuple[int, int]], list[list[Detection]]]:
        """Fused pictures, board sizes and the regions (raw scores) of a batch of pairs."""
        pictures, frames, sizes = self._fused(boards)
        return pictures, sizes, propose(self.vlm, np.stack([np.asarray(p) for p in pictures]), frames)

    def _calibrated(self, regions: list[Detection], with_template: bool) -> list[Detection]:
        # The language model was trained on raw head scores; users get calibrated ones.
        meta = self.vlm.meta
        params = meta.calibration if with_template else meta.calibration_no_template
        return [Detection(r.cls, r.box, calibrate(r.conf, params)) for r in regions]

    def _inputs(self, pictures: list[Image.Image], texts: list[str]):
        """Processor inputs of the batch. The prompts differ only by their question; shorter ones
        are padded on the left (no padding at all when every question is the same)."""
        prompts = [self.vlm.processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": t}]}],
            add_generation_prompt=True, tokenize=False) for t in texts]
        return self.vlm.processor(text=prompts, images=pictures, padding=True, padding_side="left",
                                  return_tensors="pt")

    def _guard(self, inputs, regions: list[list[Detection]], sizes: list[tuple[int, int]]) -> ScanLogits:
        return ScanLogits(self.tok, tuple(self.vlm.meta.classes), [len(r) for r in regions],
                          lambda row, reading: descriptors(regions[row], sizes[row], reading), inputs["input_ids"].shape[1])

    def _generate(self, pictures: list[Image.Image], texts: list[str], regions: list[list[Detection]],
                  sizes: list[tuple[int, int]]) -> list[tuple[str, list[float]]]:
        """(scan text, decision log-probabilities) per row: greedy decoding under ScanLogits.

        Walks the grammar position by position. Where every row's token is forced it is only
        queued; where some row has a choice, the queued tokens are fed in one forward call and
        the logits at its last position give the choice (argmax over the allowed tokens, as
        `model.generate` does). A row that has finished writes end-of-turn tokens.
        """
        inputs = self._inputs(pictures, texts)
        guard = self._guard(inputs, regions, sizes)
        scan = _Scan(self.vlm.model, inputs, one_picture=self._encodes_once and all(p is pictures[0] for p in pictures))
        written: list[list[int]] = [[] for _ in pictures]
        logprobs: list[list[float]] = [[] for _ in pictures]
        queued: list[list[int]] = []  # one token per row for each position not fed yet
        for _ in range(guard.max_new_tokens):
            allowed = [guard.allowed(row, w) for row, w in enumerate(written)]
            if all(len(a) == 1 for a in allowed):
                column = [a[0] for a in allowed]
            else:
                scores = scan.feed(queued)
                queued = []
                masked = scores + guard.mask(allowed, scores)
                column = masked.argmax(-1).tolist()
                chosen = masked.log_softmax(-1).gather(1, torch.tensor(column)[:, None])[:, 0].tolist()
                for row, w in enumerate(written):
                    if guard.is_decision(row, w):
                        logprobs[row].append(chosen[row])
            queued.append(column)
            for row, token in enumerate(column):
                written[row].append(token)
            if all(len(w) >= guard.steps(row, w) for row, w in enumerate(written)):
                break
        return [(self.tok.decode(w[:guard.steps(row, w)], skip_special_tokens=True).strip(), lp)
                for row, (w, lp) in enumerate(zip(written, logprobs, strict=False))]

    def _generate_reference(self, pictures: list[Image.Image], texts: list[str], regions: list[list[Detection]],
                            sizes: list[tuple[int, int]]) -> list[str]:
        """The scan texts from plain `model.generate` with ScanLogits: one forward per token.
        Slower; kept as the reference `_generate` is tested against."""
        inputs = self._inputs(pictures, texts)
        n = inputs["input_ids"].shape[1]
        guard = self._guard(inputs, regions, sizes)
        out = self.vlm.model.generate(**inputs, max_new_tokens=guard.max_new_tokens, do_sample=False,
                                      logits_processor=[guard], eos_token_id=self.tok.eos_token_id,
                                      pad_token_id=self.tok.pad_token_id)
        return [self.tok.decode(row[n:], skip_special_tokens=True).strip() for row in out]


class _Scan:
    """The language model over a batch of prompts with its KV cache, fed token chunk by chunk.

    Positions follow what `model.generate` gives a Qwen3-VL model: 4 rows (text, then the
    3 multimodal rotary rows) from `get_rope_index` at the prefill; after it, each new token's
    text position is its row's count of real (unpadded) tokens so far, and the multimodal
    rows are that plus the row's rope delta. They are computed here, not left to the
    model's stored `rope_deltas`.
    """

    def __init__(self, model, inputs, one_picture: bool = False):
        self.model, self.inputs = model, inputs
        # Every row shows the same picture (several questions about one board): encode it once
        # instead of once per row (the vision tower was ~45 % of a 12-question batch).
        self.one_picture = one_picture
        self.cache = None
        self.mask = inputs["attention_mask"]
        self.seen = self.mask.sum(-1)  # real tokens per row
        self.delta = None

    def feed(self, columns: list[list[int]]) -> torch.Tensor:
        """Feed `columns` (each one token per row) after everything fed so far: float32 logits
        (rows, vocab) at the last position. The first call also feeds the prompt."""
        rows = self.mask.shape[0]
        new = torch.tensor(columns, dtype=torch.long).reshape(-1, rows).T  # (rows, len(columns))
        ones = torch.ones_like(new, dtype=self.mask.dtype)
        if self.cache is None:
            ids = torch.cat([self.inputs["input_ids"], new], dim=1)
            mask = torch.cat([self.mask, ones], dim=1)
            kinds = self.inputs["mm_token_type_ids"]
            kinds = torch.cat([kinds, torch.zeros_like(new, dtype=kinds.dtype)], dim=1)
            rope, self.delta = self.model.model.get_rope_index(
                ids, kinds, image_grid_thw=self.inputs["image_grid_thw"], attention_mask=mask)
            text = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
            extra = {**self._pictures(rows), "image_grid_thw": self.inputs["image_grid_thw"], "mm_token_type_ids": kinds}
        else:
            ids = new.contiguous()
            mask = torch.cat([self.mask, ones], dim=1)
            text = self.seen[:, None] + torch.arange(new.shape[1])
            rope = (text + self.delta).expand(3, -1, -1)
            extra = {}
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=torch.cat([text[None], rope]),
                         cache=self.cache, use_cache=True, logits_to_keep=1, **extra)
        self.cache, self.mask = out.cache, mask
        self.seen = self.seen + new.shape[1]
        return out.logits[:, -1].float()

    def _pictures(self, rows: int) -> dict:
        """The prefill's picture input: the pixels, or (one_picture) the first row's encoding repeated."""
        pixels, grid = self.inputs["pixel_values"], self.inputs["image_grid_thw"]
        if not self.one_picture:
            return {"pixel_values": pixels}
        enc = self.model.model.get_image_features(pixels[: int(grid[0].prod())], grid[:1], return_dict=True)
        enc.pooler_output = tuple(enc.pooler_output) * rows
        enc.deepstack_features = [tuple(f) * rows for f in enc.deepstack_features or []]
        return {"mm_encoder_outputs": {"image": enc}}
