"""The promotion gate: absolute thresholds plus "no worse than the champion".

`judge` never loosens a threshold: a missing or non-finite metric fails its
check, and the champion comparison only ever adds checks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

from components.config import GateConfig

# (metric, GateConfig field, op). Strict ops: the threshold itself fails.
RULES: tuple[tuple[str, str, str], ...] = (
    ("f1_iou33", "min_f1_iou33", ">"),
    ("center_rmse_px", "max_center_rmse_px", "<"),
    ("hallucination_rate", "max_hallucination_rate", "<"),
    ("latency_p95_s", "max_latency_p95_s", "<"),
    ("count_exact", "min_count_exact", ">"),
    ("ece", "max_ece", "<"),
    ("template_false_alarm", "max_template_false_alarm", "<"),
    ("parse_failure_rate", "max_parse_failure_rate", "<"),
    # The question suite (evaluation/questions.py): every kind of question, held-out wordings.
    ("answer_f1_locate", "min_answer_f1_locate", ">"),
    ("answer_f1_exists", "min_answer_f1_exists", ">"),
    ("answer_f1_count_class", "min_answer_f1_count_class", ">"),
    ("answer_f1_spatial", "min_answer_f1_spatial", ">"),
    ("count_exact_count_class", "min_count_exact_count_class", ">"),
    ("false_none_rate", "max_false_none_rate", "<"),
    ("question_read_accuracy", "min_question_read_accuracy", ">"),
)
GATED: tuple[str, ...] = tuple(r[0] for r in RULES)


class Check(NamedTuple):
    """One comparison. Gate thresholds use strict ops (`<`, `>`); champion
    comparisons use `<=` / `>=` ("no worse than"). `margin` is the signed
    headroom: positive = passed by that much, negative = failed by that much."""

    metric: str
    value: float
    threshold: float
    op: str
    passed: bool
    margin: float

    @property
    def against_champion(self) -> bool:
        return self.op in ("<=", ">=")


def _check(metric: str, value, threshold: float, op: str) -> Check:
    v = float(value) if isinstance(value, (int, float)) else math.nan
    if math.isnan(v) or math.isinf(v):
        return Check(metric, v, threshold, op, False, math.nan)
    margin = threshold - v if op in ("<", "<=") else v - threshold
    passed = margin > 0 if op in ("<", ">") else margin >= 0
    return Check(metric, v, threshold, op, passed, margin)


@dataclass
class Verdict:
    passed: bool
    checks: list[Check]
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def summary(self) -> str:
        """One line per failure, naming the metric and by how much it missed."""
        n_gate = sum(not c.against_champion for c in self.checks)
        n_champ = len(self.checks) - n_gate
        scope = f"{n_gate} gate checks" + (f" and {n_champ} champion checks" if n_champ else "")
        if self.passed:
            head = f"PASSED: all {scope} passed."
        else:
            head = f"FAILED: {len(self.failures)} of {scope} failed:"
        lines = [head] + [f"  - {_describe(c)}" for c in self.failures]
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])

    def markdown(self) -> str:
        rows = ["| metric | value | rule | margin | result |", "|---|---|---|---|---|"]
        for c in self.checks:
            rule = f"{c.op} {'champion ' if c.against_champion else ''}{_fmt(c.threshold)}"
            rows.append(f"| {c.metric} | {_fmt(c.value)} | {rule} | {_fmt(c.margin)} | "
                        f"{'pass' if c.passed else '**FAIL**'} |")
        verdict = "**PASSED**" if self.passed else "**FAILED**"
        return "\n".join([f"Gate verdict: {verdict}", ""] + rows + [f"\n_{n}_" for n in self.notes])

    def to_dict(self) -> dict:
        return {"passed": self.passed, "checks": [c._asdict() for c in self.checks], "notes": self.notes}


def _fmt(x: float) -> str:
    return "n/a" if isinstance(x, float) and math.isnan(x) else f"{x:.4g}"


def _describe(c: Check) -> str:
    if math.isnan(c.margin):
        return f"{c.metric}: missing or not a finite number (needs {c.op} {_fmt(c.threshold)})"
    word = "over" if c.op in ("<", "<=") else "under"
    target = f"champion's {_fmt(c.threshold)} (incl. tolerance)" if c.against_champion else _fmt(c.threshold)
    return f"{c.metric} = {_fmt(c.value)} is not {c.op} {target}: {word} by {_fmt(abs(c.margin))}"


def _champion_checks(metrics: dict, gate: GateConfig, champion: dict) -> tuple[list[Check], list[str]]:
    checks, notes = [], []
    tol = gate.regression_tolerance  # absolute, in the metric's units; negative = must improve
    for metric, _, op in RULES:
        ref = champion.get(metric)
        if not isinstance(ref, (int, float)) or not math.isfinite(ref):
            notes.append(f"champion has no {metric}; that comparison was skipped")
            continue
        # "Worse" is higher for `<` metrics and lower for `>` metrics.
        bound, cmp = (ref + tol, "<=") if op == "<" else (ref - tol, ">=")
        checks.append(_check(metric, metrics.get(metric), bound, cmp))
    return checks, notes


def judge(metrics: dict, gate: GateConfig, champion_metrics: dict | None = None) -> Verdict:
    """Apply the gate. Pass `champion_metrics` only when they were measured on
    the SAME evaluation data as `metrics` (e.g. re-evaluate the champion);
    with None the candidate is judged on the absolute thresholds alone."""
    checks = [_check(m, metrics.get(m), getattr(gate, f), op) for m, f, op in RULES]
    notes: list[str] = []
    if champion_metrics:
        more, notes = _champion_checks(metrics, gate, champion_metrics)
        checks += more
    else:
        notes.append("no champion metrics given: absolute thresholds only")
    return Verdict(all(c.passed for c in checks), checks, notes)
