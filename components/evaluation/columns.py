"""What an evaluation reports: the metric columns every table shows, the headline (scalar)
figures, and NaN as None for JSON.

`COLUMNS` is the one list of reported metrics, in report order: the ablation tables
(docs/RESULTS.md), report.html, the `defectqa retrain` summary and the flow's Prefect table
all take their columns from it, and every metric the promotion gate judges
(registry/gate.py `RULES`, thresholds in config `GateConfig`) is one of them (checked
where the gate is defined, and by tests/evaluation/test_columns.py). The keys are the
metric names of `headline()`, MLflow and the registry.

Torch-free on purpose: the registry and the CLI read it without loading a model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from components.evaluation.questions import FIGURES
from components.line import BOXES_KIND, WAFER_KIND


@dataclass(frozen=True)
class Column:
    key: str
    """The metric's name (headline(), metrics.json, MLflow)."""
    header: str
    """Short header of the markdown tables."""
    higher_is_better: bool | None
    """None: a count, no better side. The gate's op on a gated metric agrees (`>` higher)."""
    count: bool = False
    """Shown as a whole number."""

    def cell(self, value, digits: int, missing: str = "–") -> str:
        """value as a table cell: `missing` for None or NaN, counts whole, floats to `digits`."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return missing
        if self.count and isinstance(value, (int, float)):
            return str(int(value))
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _suite_header(figure: str) -> str:
    return figure.replace("answer_f1_", "F1 ").replace("count_exact_", "count ").replace("_rate", "").replace("_", " ")


DESCRIBE: tuple[Column, ...] = (
    Column("f1_iou33", "F1@.33", True), Column("precision_iou33", "P", True), Column("recall_iou33", "R", True),
    Column("map50", "mAP50", True), Column("center_rmse_px", "centre RMSE px", False),
    Column("count_exact", "count exact", True), Column("hallucination_rate", "halluc.", False),
    Column("template_false_alarm", "template FA", False), Column("ece", "ECE", False),
    Column("parse_failure_rate", "parse fail", False), Column("latency_p50_s", "p50 s", False),
    Column("latency_p95_s", "p95 s", False), Column("n_images", "boards", None, count=True),
)
"""The describe-all answers' figures (metrics.compute_metrics, evaluate.measure_latency)."""

PERTURBED: tuple[Column, ...] = tuple(c for c in DESCRIBE if not c.key.startswith("latency_"))
"""What each perturbation of evaluation/robustness.py is reported with, beside the clean row:
the describe-all figures but latency (a perturbed evaluation's latency is its batched answers',
the clean one's single asks: not comparable)."""

SUITE: tuple[Column, ...] = (
    *(Column(f, _suite_header(f), not f.endswith("_rate")) for f in FIGURES),
    Column("n_questions", "questions", None, count=True),
)
"""The held-out question suite's figures (questions.score), every kind of question; the
`*_rate` figures are shares of wrong answers (lower is better)."""

COLUMNS: tuple[Column, ...] = DESCRIBE + SUITE
REPORTED: tuple[str, ...] = tuple(c.key for c in COLUMNS)

WAFER: tuple[Column, ...] = (
    Column("macro_f1", "macro F1", True), Column("accuracy", "accuracy", True),
    Column("none_false_alarm", "None FA", False), Column("pattern_recall_min", "worst recall", True),
    Column("location_accuracy", "location", True), Column("fail_share_mae", "share MAE", False),
    Column("ece", "ECE", False), Column("question_read_accuracy", "read", True),
    Column("presence_false_yes", "false yes", False),
    Column("latency_p50_s", "p50 s", False), Column("latency_p95_s", "p95 s", False),
    Column("n_maps", "maps", None, count=True), Column("n_questions", "questions", None, count=True),
)
"""The wafer line's figures (evaluation/wafer_evaluate.py): the pattern answers' macro F1 over the
labels, how often a None map gets a pattern, the worst label's recall, what the location and
share answers state against the map, calibration, the question reading, presence questions
answered yes about a pattern the map does not show, latency."""
COLUMNS_OF_KIND: dict[str, tuple[Column, ...]] = {BOXES_KIND: COLUMNS, WAFER_KIND: WAFER}
"""The reported columns of a line of each kind (components/line.py KINDS)."""


def headline(metrics: dict) -> dict[str, float]:
    """Only the scalar entries (what goes to MLflow's log_metrics, the registry and the gate)."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def json_safe(metrics: dict) -> dict:
    """NaN (a metric with nothing to measure) as None, which JSON can carry; other values as they are."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}
