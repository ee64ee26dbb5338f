"""The promotion gate: thresholds, champion comparison and the verdict text."""
from __future__ import annotations

from components.config import GateConfig
from components.registry.gate import GATED, PAIRED, judge
from tests.registry.conftest import GOOD


def test_good_metrics_pass():
    v = judge(GOOD, GateConfig())
    assert v.passed and len(v.checks) == len(GATED)
    assert v.summary().startswith("PASSED")


def test_failure_names_metric_and_margin():
    v = judge({**GOOD, "hallucination_rate": 0.04}, GateConfig())
    assert not v.passed
    assert [c.metric for c in v.failures] == ["hallucination_rate"]
    text = v.summary()
    assert "hallucination_rate" in text and "over by 0.02" in text
    assert "**FAIL**" in v.markdown() and "| hallucination_rate |" in v.markdown()


def test_a_line_without_references_is_not_judged_on_template_false_alarms():
    no_templates = {**GOOD, "template_false_alarm": float("nan")}
    assert not judge(no_templates, GateConfig()).passed  # a line with templates: missing fails
    v = judge(no_templates, GateConfig(), reference="none")
    assert v.passed and "template_false_alarm" not in {c.metric for c in v.checks}
    assert "template_false_alarm: not judged, the line has no defect-free references" in v.summary()
    assert not judge({**no_templates, "f1_iou33": 0.5}, GateConfig(), reference="none").passed


def test_threshold_itself_and_missing_metric_fail():
    gate = GateConfig()
    v = judge({**GOOD, "count_exact": gate.min_count_exact, "ece": float("nan")}, gate)
    failed = {c.metric for c in v.failures}
    assert failed == {"count_exact", "ece"}
    v = judge({k: x for k, x in GOOD.items() if k != "latency_p95_s"}, gate)
    assert not v.passed and "latency_p95_s: missing" in v.summary()


def _same(**changes) -> dict:
    """A paired comparison where every figure is unchanged but for `changes` (diff, low, high)."""
    return {m: changes.get(m, (0.0, -0.001, 0.001)) for m in PAIRED}


def test_better_on_the_primary_and_within_margins_elsewhere_is_promoted():
    # The month-2 replay's count exact: no difference, interval +-0.036 (111 boards).
    comparison = _same(f1_iou33=(0.012, 0.002, 0.022), count_exact=(0.0, -0.036, 0.036))
    v = judge(GOOD, GateConfig(), comparison)
    assert v.passed, v.summary()
    assert len(v.checks) == len(GATED) + len(PAIRED) + 1
    assert "candidate - champion +0.012, 90% interval [+0.002, +0.022]" in v.markdown()


def test_worse_beyond_a_margin_on_any_gated_figure_is_not():
    gate = GateConfig()
    comparison = _same(f1_iou33=(0.02, 0.01, 0.03), center_rmse_px=(0.6, 0.2, 0.9))
    v = judge(GOOD, gate, comparison)
    assert [c.metric for c in v.failures] == ["center_rmse_px"]
    assert "center_rmse_px = 0.9 is not <= 0.5" in v.summary() and "interval [+0.2, +0.9]" in v.summary()
    # Higher-is-better figures are judged on the interval's low end.
    v = judge(GOOD, gate, _same(f1_iou33=(0.01, 0.0, 0.02), answer_f1_spatial=(-0.03, -0.07, 0.01)))
    assert [c.metric for c in v.failures] == ["answer_f1_spatial"]


def test_the_primary_figure_must_improve_or_hold():
    assert judge(GOOD, GateConfig(), _same(f1_iou33=(0.0, -0.005, 0.005))).passed
    v = judge(GOOD, GateConfig(), _same(f1_iou33=(-0.004, -0.008, 0.0)))
    assert [c.metric for c in v.failures] == ["f1_iou33 (primary) gain"]


def test_the_comparison_never_loosens_the_thresholds():
    v = judge({**GOOD, "ece": 0.06}, GateConfig(), _same(f1_iou33=(0.05, 0.04, 0.06)))
    assert [c.metric for c in v.failures] == ["ece"]
    # A figure missing from the comparison is noted, not passed silently.
    partial = {k: x for k, x in _same().items() if k != "count_exact"}
    assert any("count_exact" in n for n in judge(GOOD, GateConfig(), partial).notes)


def test_a_model_that_answers_none_to_class_questions_fails():
    """The bug the question suite was built for: describe-all fine, every class question 'none found'."""
    v = judge({**GOOD, "answer_f1_locate": 0.0, "answer_f1_exists": 0.0, "false_none_rate": 0.8}, GateConfig())
    assert {c.metric for c in v.failures} == {"answer_f1_locate", "answer_f1_exists", "false_none_rate"}


def test_the_month_2_replay_loses_on_reading_alone():
    """The paired comparison the month-2 replay measured (README, "Running it as a service"):
    better F1, centre and exists, equal count, but a worse reading, the whole interval below."""
    measured = _same(f1_iou33=(0.0293, 0.01546, 0.04373), center_rmse_px=(-1.146, -1.491, -0.834),
                     count_exact=(0.0, -0.03604, 0.03604), answer_f1_locate=(0.009435, -0.04317, 0.05472),
                     answer_f1_exists=(0.1046, 0.04219, 0.1635),
                     question_read_accuracy=(-0.02267, -0.02931, -0.01616))
    v = judge(GOOD, GateConfig(), measured)
    assert [c.metric for c in v.failures] == ["question_read_accuracy"]
