"""The wafer line's evaluation as it is used (every map asked its pattern and one other kind in
held-out wordings, the answers parsed back), its files (metrics, report, answers, per-map sums,
the CSV export), the paired figures, and the wafer gate."""
from __future__ import annotations

import csv
import json
import math

import pytest
import yaml

from components import config
from components.evaluation import paired
from components.evaluation.run import evaluate_wafer_model
from components.evaluation.wafer_evaluate import HELDOUT, heldout_phrasings
from components.evaluation.wafer_metrics import label_metrics, map_sums, sum_figures
from components.qa.wafer_vocab import KINDS, OFF_PHRASINGS, PHRASINGS
from components.registry import gate
from tests.conftest import wafer_sample, wm811k_root

LABELS = ["None", "Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Near-full", "Random", "Scratch"]


@pytest.fixture(scope="module")
def evaluated(wafer_model, tmp_path_factory):
    cfg, _, model_dir = wafer_model
    maps = wafer_sample(wm811k_root() / "val.npz", 8)
    out = tmp_path_factory.mktemp("wafer-eval")
    metrics = evaluate_wafer_model(model_dir, maps, cfg, out / "eval", "tiny", export=out / "export.csv")
    return cfg, maps, out, metrics


def test_no_heldout_wording_is_a_training_one():
    held = heldout_phrasings()
    assert set(held) == {*KINDS, "off"}, "the YAML key off must be quoted (bare off reads as false)"
    train = {q.lower() for qs in PHRASINGS.values() for q in qs} | {q.lower() for q in OFF_PHRASINGS}
    assert not {q.lower() for qs in held.values() for q in qs} & train
    assert yaml.safe_load(HELDOUT.read_text()) == held


def test_every_map_is_asked_and_every_figure_and_file_is_written(evaluated):
    cfg, maps, out, m = evaluated
    for key in ("macro_f1", "accuracy", "none_false_alarm", "pattern_recall_min", "location_accuracy", "fail_share_mae",
                "ece", "latency_p50_s", "latency_p95_s", "n_maps", "question_read_accuracy"):
        assert isinstance(m[key], float | int) and not math.isnan(m[key]), key
    assert m["n_maps"] == len(maps) and m["n_questions"] == 2 * len(maps)
    assert {f"read_accuracy_{k}" for k in (*KINDS, "off")} <= set(m)
    assert 0 <= m["fail_share_mae"] < 0.01  # the share is measured by code, stated to two decimals of a percent
    answers = [json.loads(line) for line in (out / "eval" / "answers.jsonl").read_text().splitlines()]
    assert len(answers) == 2 * len(maps) and sum(a["kind"] == "pattern" for a in answers) == len(maps)
    presence = [a for a in answers if a["kind"] == "presence"]
    false_yes = [" [FOUND] yes " in a["answer"] and a["asked"] != maps[a["index"]].label for a in presence]
    assert presence and m["presence_false_yes"] == pytest.approx(sum(false_yes) / len(presence))
    html = (out / "eval" / "report.html").read_text()
    assert 'id="per-label"' in html and 'id="confusion"' in html and html.count("<figure>") == cfg.eval.report_overlays
    with (out / "export.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["index"]) for r in rows] == list(range(len(maps)))
    assert {r["label"] for r in rows} <= set(LABELS) and all(0 <= float(r["confidence"]) <= 1 for r in rows)


def test_the_per_map_sums_rebuild_the_headline_figures(evaluated):
    _, maps, out, m = evaluated
    sums = paired.load(out / "eval" / paired.BOARDS)
    assert len(sums) == len(maps)
    total = {k: sum(s.get(k, 0.0) for s in sums.values()) for s in sums.values() for k in s}
    rebuilt = sum_figures(total)
    for key in ("macro_f1", "pattern_recall_min", "none_false_alarm", "location_accuracy", "question_read_accuracy"):
        assert rebuilt[key] == pytest.approx(m[key], abs=1e-6), key
    same = paired.bootstrap(sums, sums, list(gate.PAIRED_OF_KIND["wafer-map"]), 50, 0, 0.9, figures_of=sum_figures)
    assert all(v == (0.0, 0.0, 0.0) for v in same.values())


def test_sum_figures_agree_with_torchmetrics_on_a_known_case():
    truth = ["None", "None", "Center", "Center", "Scratch", "Loc"]
    pred = ["None", "Loc", "Center", "None", "Scratch", "Loc"]
    scores = label_metrics(pred, [0.9] * 6, truth, LABELS, 10)
    total: dict[str, float] = {}
    for t, p in zip(truth, pred, strict=True):
        for k, v in map_sums(t, p).items():
            total[k] = total.get(k, 0.0) + v
    got = sum_figures(total)
    assert got["macro_f1"] == pytest.approx(scores["macro_f1"], abs=1e-6)
    assert got["none_false_alarm"] == scores["none_false_alarm"] == 0.5
    assert got["pattern_recall_min"] == scores["pattern_recall_min"] == 0.5


def test_the_wafer_gate_judges_the_wafer_figures_and_names_what_missed():
    cfg_gate = config.load(None, line="wafer").gate
    assert cfg_gate.primary_metric == "macro_f1"
    good = {"macro_f1": 0.9, "none_false_alarm": 0.01, "pattern_recall_min": 0.7, "location_accuracy": 0.9,
            "fail_share_mae": 0.0001, "ece": 0.01, "latency_p95_s": 0.01, "question_read_accuracy": 0.99}
    v = gate.judge(good, cfg_gate, reference="none", kind="wafer-map")
    assert v.passed and len(v.checks) == len(gate.WAFER_RULES) and "f1_iou33" not in v.markdown()
    bad = gate.judge({**good, "none_false_alarm": 0.05}, cfg_gate, reference="none", kind="wafer-map")
    assert not bad.passed and f"none_false_alarm = 0.05 is not < {cfg_gate.max_none_false_alarm:.4g}" in bad.summary()
    diffs = {k: (0.0, -0.001, 0.001) for k in gate.PAIRED_OF_KIND["wafer-map"]}
    worse = gate.judge(good, cfg_gate, {**diffs, "macro_f1": (-0.05, -0.08, -0.02)}, "none", "wafer-map")
    assert not worse.passed and any(c.metric.startswith("macro_f1") and not c.passed for c in worse.checks)
    held = gate.judge(good, cfg_gate, diffs, "none", "wafer-map")
    assert held.passed and any(c.metric == "macro_f1 (primary) gain" for c in held.checks)
