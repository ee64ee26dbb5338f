"""The promotion gate: thresholds, champion comparison and the verdict text."""
from __future__ import annotations

from components.config import GateConfig
from components.registry.gate import GATED, judge
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


def test_threshold_itself_and_missing_metric_fail():
    gate = GateConfig()
    v = judge({**GOOD, "count_exact": gate.min_count_exact, "ece": float("nan")}, gate)
    failed = {c.metric for c in v.failures}
    assert failed == {"count_exact", "ece"}
    v = judge({k: x for k, x in GOOD.items() if k != "latency_p95_s"}, gate)
    assert not v.passed and "latency_p95_s: missing" in v.summary()


def test_worse_than_champion_fails_even_within_thresholds():
    champ = {**GOOD, "center_rmse_px": 4.0, "count_exact": 0.995}
    v = judge(GOOD, GateConfig(), champ)
    failed = {(c.metric, c.op) for c in v.failures}
    assert failed == {("center_rmse_px", "<="), ("count_exact", ">=")}
    assert "center_rmse_px = 5 is not <= champion's 4" in v.summary()
    assert "over by 1" in v.summary()


def test_tolerance_only_relaxes_the_champion_comparison():
    champ = {**GOOD, "center_rmse_px": 4.0, "count_exact": 0.995}
    assert judge(GOOD, GateConfig(regression_tolerance=2.0), champ).passed
    # The absolute thresholds stay: tolerance never loosens them.
    bad = {**GOOD, "ece": 0.06}
    assert not judge(bad, GateConfig(regression_tolerance=1.0), {**GOOD, "ece": 0.06}).passed
    # A negative tolerance demands an improvement of that size.
    assert not judge(GOOD, GateConfig(regression_tolerance=-0.01), dict(GOOD)).passed


def test_equal_to_champion_passes():
    v = judge(GOOD, GateConfig(), dict(GOOD))
    assert v.passed and len(v.checks) == 2 * len(GATED)


def test_a_model_that_answers_none_to_class_questions_fails():
    """The bug the question suite was built for: describe-all fine, every class question 'none found'."""
    v = judge({**GOOD, "answer_f1_locate": 0.0, "answer_f1_exists": 0.0, "false_none_rate": 0.8}, GateConfig())
    assert {c.metric for c in v.failures} == {"answer_f1_locate", "answer_f1_exists", "false_none_rate"}
