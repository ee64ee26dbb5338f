"""A question about a wafer map answered end to end: the pattern branch's calibrated
distribution, the language model's reading, the measured facts, the answer."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from components.data.wafer import OUTSIDE, VALUES
from components.model.wafer_lm import WaferLM
from components.model.wafer_pattern import WaferPattern
from components.qa.wafer_grammar import WaferAnswer, answer_of, render, sentence
from components.qa.wafer_measure import measure

PATTERN_DIR, LM_DIR = "pattern", "lm"
"""A wafer model folder: the branch and the language model side by side."""


class WaferInspector:
    def __init__(self, branch: WaferPattern, lm: WaferLM):
        self.branch, self.lm = branch, lm

    @classmethod
    def load(cls, folder: str | Path) -> WaferInspector:
        folder = Path(folder)
        return cls(WaferPattern.load(folder / PATTERN_DIR), WaferLM.load(folder / LM_DIR))

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        self.branch.save(folder / PATTERN_DIR)
        self.lm.save(folder / LM_DIR)
        return folder

    def distributions(self, grids: list[np.ndarray]) -> list[dict[str, float]]:
        labels = self.branch.meta.labels
        return [dict(zip(labels, p.tolist(), strict=True)) for p in self.branch.probabilities(grids)]

    def answer(self, grid: np.ndarray, question: str, probs: dict[str, float] | None = None) -> WaferAnswer:
        """`probs`: the branch's distribution when already computed, else computed here."""
        return self.answers([grid], [question], [probs] if probs else None)[0]

    def answers(self, grids: list[np.ndarray], questions: list[str],
                probs: list[dict[str, float]] | None = None) -> list[WaferAnswer]:
        """One question per map, read in batches; `probs` as for `answer`."""
        probs = probs or self.distributions(grids)
        readings = self.lm.read_batch(questions, probs)
        return [answer_of(r, p, measure(g)) for r, p, g in zip(readings, probs, grids, strict=True)]

    def ask(self, grid: np.ndarray, question: str) -> dict:
        """What the CLI, the pyfunc model and the service return: the answer as the engineer reads
        it, its fields, and its grammar text; ValueError naming what is wrong with a map that is not one."""
        return self.ask_batch([grid], [question])[0]

    def ask_batch(self, grids: list[np.ndarray], questions: list[str],
                  probs: list[dict[str, float]] | None = None) -> list[dict]:
        """`ask` for one question per map, read in batches; `probs` as for `answers`."""
        for grid in grids:
            check_grid(grid)
        words = {k: [tuple(p) for p in v] for k, v in self.lm.meta.words.items()}
        return [{"answer_text": sentence(a, words, self.lm.meta.items[0]), "answer": dataclasses.asdict(a),
                 "grammar": render(a)} for a in self.answers(grids, questions, probs)]


def check_grid(grid: np.ndarray) -> None:
    """A bin map holds only 0 / 128 / 255 and at least one die."""
    other = sorted(set(np.unique(grid).tolist()) - set(VALUES))
    if other:
        raise ValueError(f"not a wafer bin map: values other than 0 / 128 / 255 ({other[:5]}); "
                         "a map has 0 off the wafer, 128 a passing die, 255 a failing die")
    if not (grid > OUTSIDE).any():
        raise ValueError("not a wafer bin map: no die on it (every value 0)")
