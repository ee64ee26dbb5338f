"""The promotion gate: absolute thresholds plus a paired comparison with the champion.

`judge` never loosens a threshold: a missing or non-finite metric fails its check, and the
champion comparison only ever adds checks. The comparison (evaluation/paired.py) is made on the
same boards: per figure, candidate - champion with a bootstrap interval; the pessimistic end of
the interval must stay within the figure's non-inferiority margin, and the primary figure must
improve or hold. ECE, latency and parse failures are judged on their absolute limits only
(binned, timed at different moments, or near zero by construction).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from components.config import GateConfig
from components.evaluation import paired
from components.evaluation.columns import COLUMNS_OF_KIND
from components.evaluation.wafer_metrics import sum_figures
from components.line import BOXES_KIND, WAFER_KIND

# (metric, GateConfig field, op). Strict ops: the threshold itself fails. Every metric here is
# a reported column (evaluation/columns.py COLUMNS, what every table shows), judged on its
# better side (`>`: higher is better); checked below when this module loads.
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
WAFER_RULES: tuple[tuple[str, str, str], ...] = (
    ("macro_f1", "min_macro_f1", ">"),
    ("none_false_alarm", "max_none_false_alarm", "<"),
    ("pattern_recall_min", "min_pattern_recall_min", ">"),
    ("location_accuracy", "min_location_accuracy", ">"),
    ("fail_share_mae", "max_fail_share_mae", "<"),
    ("ece", "max_ece", "<"),
    ("latency_p95_s", "max_latency_p95_s", "<"),
    ("question_read_accuracy", "min_question_read_accuracy", ">"),
)
"""The wafer line's rules (evaluation/wafer_evaluate.py figures, columns.WAFER)."""
RULES_OF_KIND: dict[str, tuple[tuple[str, str, str], ...]] = {BOXES_KIND: RULES, WAFER_KIND: WAFER_RULES}
"""The rules a line of each kind (components/line.py KINDS) is judged by."""
GATED: tuple[str, ...] = tuple(r[0] for r in RULES)
NEEDS_REFERENCE: tuple[str, ...] = ("template_false_alarm",)
"""Figures measured on defect-free references: a line that has none (reference `none`, e.g.
steel strip) cannot measure them, so its gate leaves them out (and says so), rather than failing
every candidate on a figure no line of its kind has."""
ABSOLUTE_ONLY = ("latency_p95_s", "ece", "parse_failure_rate")
"""Judged on their limits only: binned (ECE), timed at different moments (latency), near zero by
construction (parse failures)."""
PAIRED_OF_KIND: dict[str, tuple[str, ...]] = {
    kind: tuple(m for m, _, _ in rules if m not in ABSOLUTE_ONLY) for kind, rules in RULES_OF_KIND.items()}
"""Per line kind, the gated figures compared with the champion's on the same boards / maps."""
PAIRED: tuple[str, ...] = PAIRED_OF_KIND["boxes"]
HIGHER_IS_BETTER: dict[str, bool] = {m: op == ">" for rules in RULES_OF_KIND.values() for m, _, op in rules}


def _astray(kind: str) -> list[str]:
    reported = {c.key: c.higher_is_better for c in COLUMNS_OF_KIND[kind]}
    return [m for m, _, op in RULES_OF_KIND[kind] if reported.get(m, "not reported") is not (op == ">")]


_ASTRAY = [f"{m} ({kind})" for kind in RULES_OF_KIND for m in _astray(kind)]
if _ASTRAY:
    raise ImportError(f"gate rules on {', '.join(_ASTRAY)}: not a reported column of evaluation/columns.py, "
                      "or judged against the column's better side")
Comparison = dict[str, tuple[float, float, float]]
"""metric -> (candidate - champion, interval low, interval high): paired.bootstrap's result."""


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
    detail: str = ""
    """For a champion check: the difference and its interval."""

    @property
    def against_champion(self) -> bool:
        return self.op in ("<=", ">=")


def _check(metric: str, value, threshold: float, op: str, detail: str = "") -> Check:
    v = float(value) if isinstance(value, (int, float)) else math.nan
    if math.isnan(v) or math.isinf(v):
        return Check(metric, v, threshold, op, False, math.nan, detail)
    margin = threshold - v if op in ("<", "<=") else v - threshold
    passed = margin > 0 if op in ("<", ">") else margin >= 0
    return Check(metric, v, threshold, op, passed, margin, detail)


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
        rows = ["| metric | value | rule | margin | result | vs champion |", "|---|---|---|---|---|---|"]
        for c in self.checks:
            rows.append(f"| {c.metric} | {_fmt(c.value)} | {c.op} {_fmt(c.threshold)} | {_fmt(c.margin)} | "
                        f"{'pass' if c.passed else '**FAIL**'} | {c.detail} |")
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
    what = f"{c.metric} = {_fmt(c.value)} is not {c.op} {_fmt(c.threshold)}: {word} by {_fmt(abs(c.margin))}"
    return f"{what} ({c.detail})" if c.detail else what


def _champion_checks(gate: GateConfig, comparison: Comparison, skipped: tuple[str, ...] = (),
                     kind: str = BOXES_KIND) -> tuple[list[Check], list[str]]:
    """Non-inferiority per paired figure (its interval's worse end within the margin), then
    the primary figure's difference must be an improvement or zero."""
    checks, notes = [], []
    for metric in (m for m in PAIRED_OF_KIND[kind] if m not in skipped):
        diff, lo, hi = comparison.get(metric, (math.nan,) * 3)
        if not math.isfinite(diff):
            notes.append(f"no paired {metric} (not measured on both models); that comparison was skipped")
            continue
        margin = gate.champion_margins.get(metric, 0.0)
        detail = f"candidate - champion {diff:+.4g}, {gate.bootstrap_level:.0%} interval [{lo:+.4g}, {hi:+.4g}]"
        if HIGHER_IS_BETTER[metric]:
            checks.append(_check(metric, lo, -margin, ">=", detail))
        else:
            checks.append(_check(metric, hi, margin, "<=", detail))
    diff, lo, hi = comparison.get(gate.primary_metric, (math.nan,) * 3)
    gain = diff if HIGHER_IS_BETTER.get(gate.primary_metric, True) else -diff
    checks.append(_check(f"{gate.primary_metric} (primary) gain", gain, 0.0, ">=",
                         "the primary figure must improve or hold"))
    return checks, notes


def compare(candidate_eval: str, champion_eval: str, gate: GateConfig, kind: str = BOXES_KIND) -> Comparison:
    """The paired comparison of two evaluation folders (their per-board or per-map sums, the same
    boards / maps)."""
    return paired.bootstrap(paired.load(Path(candidate_eval) / paired.BOARDS), paired.load(Path(champion_eval) / paired.BOARDS),
                            list(PAIRED_OF_KIND[kind]), gate.bootstrap_draws, gate.bootstrap_seed, gate.bootstrap_level,
                            figures_of=sum_figures if kind == WAFER_KIND else None)


def judge(metrics: dict, gate: GateConfig, comparison: Comparison | None = None, reference: str = "optional",
          kind: str = BOXES_KIND) -> Verdict:
    """Apply the gate. `comparison`: paired.bootstrap of this candidate against the champion
    on the same boards; with None the candidate is judged on the absolute thresholds alone.
    reference: the line's reference mode; `none` leaves out NEEDS_REFERENCE. kind: the line's
    (RULES_OF_KIND)."""
    rules = RULES_OF_KIND[kind]
    skipped = tuple(m for m in NEEDS_REFERENCE if m in {r[0] for r in rules}) if reference == "none" else ()
    checks = [_check(m, metrics.get(m), getattr(gate, f), op) for m, f, op in rules if m not in skipped]
    notes: list[str] = [f"{', '.join(skipped)}: not judged, the line has no defect-free references"] if skipped else []
    if comparison:
        more, paired_notes = _champion_checks(gate, comparison, skipped, kind)
        checks += more
        notes += paired_notes
        notes.append("latency, ECE and parse failures: absolute limits only (not compared with the champion)")
    else:
        notes.append("no champion comparison: absolute thresholds only")
    return Verdict(all(c.passed for c in checks), checks, notes)
