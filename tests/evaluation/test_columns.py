"""One list of reported metric columns (evaluation/columns.py): every gated metric is in it,
and every table writer shows exactly its columns (a writer with its own list fails here)."""
import dataclasses
import math
import re

from components.config import Config, GateConfig
from components.data.records import Sample
from components.evaluation.columns import COLUMNS, COLUMNS_OF_KIND, DESCRIBE, PERTURBED, REPORTED, SUITE, headline, json_safe
from components.registry.gate import RULES_OF_KIND


def _metrics() -> dict:
    """Every reported figure, plus scalars no table reports and a nested section."""
    m = {c.key: (3 if c.count else 0.5) for c in COLUMNS}
    m["center_rmse_px"] = math.nan  # not measured
    return {**m, "n_templates": 2, "seconds_per_answer_batched": 0.1, "per_class": {"open": {"f1": 1.0}}}


def _robust() -> dict:
    return {"noise": {"severity": 8.0, **headline(_metrics())}, "blur": {"severity": 1.5, **headline(_metrics())}}


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_every_gated_metric_is_a_reported_column_on_its_better_side():
    for kind, rules in RULES_OF_KIND.items():
        better = {c.key: c.higher_is_better for c in COLUMNS_OF_KIND[kind]}
        for metric, _field, op in rules:
            assert metric in better, (kind, metric)
            assert better[metric] is (op == ">"), (kind, metric)
    thresholds = {f.name for f in dataclasses.fields(GateConfig) if f.name.startswith(("min_", "max_"))}
    judged = {field for rules in RULES_OF_KIND.values() for _, field, _ in rules}
    assert thresholds == judged  # every threshold is judged by some line kind, on a reported column
    reported = {c.key for columns in COLUMNS_OF_KIND.values() for c in columns}
    assert set(GateConfig().champion_margins) <= reported
    assert len(set(REPORTED)) == len(REPORTED) and len({c.header for c in COLUMNS}) == len(COLUMNS)
    assert COLUMNS == DESCRIBE + SUITE and set(PERTURBED) <= set(DESCRIBE)


def test_headline_and_json_safe():
    flat = headline(_metrics())
    assert "per_class" not in flat and flat["n_images"] == 3.0 and isinstance(flat["n_images"], float)
    safe = json_safe(flat)
    assert safe["center_rmse_px"] is None and safe["f1_iou33"] == 0.5


def test_cells():
    by = {c.key: c for c in COLUMNS}
    assert by["n_images"].cell(111.0, 3) == "111" and by["f1_iou33"].cell(0.91234, 3) == "0.912"
    assert by["ece"].cell(math.nan, 4, "-") == "-" and by["ece"].cell(None, 4) == "–"


def test_ablation_tables_show_the_reported_columns(tmp_path):
    from components.evaluation.ablate import SERVED, render_results

    row = {"row": SERVED, "train_minutes": 1.0, "note": "", "metrics": json_safe(headline(_metrics()))}
    skipped = {"row": "SFT only", "model": "sft/model", "skipped": "the run folder has no such model"}
    samples = [Sample("b1", "group1", str(tmp_path / "b1_test.jpg"), str(tmp_path / "b1_temp.jpg"))]
    text = render_results([row, skipped], samples, Config(), "defectqa ablate run", tmp_path, tmp_path, robust=_robust())
    lines = text.splitlines()
    headers = [_cells(line) for line in lines if line.startswith(("| row |", "| perturbation |"))]
    main, suite, robust = headers
    assert main == ["row", *(c.header for c in DESCRIBE), "train min", "note"]
    assert suite == ["row", *(c.header for c in SUITE)]
    assert robust == ["perturbation", "severity", *(c.header for c in PERTURBED)]
    served = _cells(next(line for line in lines if line.startswith(f"| {SERVED} |")))
    assert served[1] == "0.500" and served[1 + [c.key for c in DESCRIBE].index("center_rmse_px")] == "–"
    assert served[1 + [c.key for c in DESCRIBE].index("n_images")] == "3"
    skipped_cells = _cells(next(line for line in lines if line.startswith("| SFT only |")))
    assert len(skipped_cells) == len(main)


def test_html_report_tables_show_the_reported_columns():
    from components.evaluation.report import headline_table, robustness_table

    rows = re.findall(r"<tr><td>([^<]+)</td>", headline_table(_metrics()))
    assert rows == [*REPORTED, "n_templates", "seconds_per_answer_batched"]
    partial = headline_table({"f1_iou33": 0.9, "n_images": 4})  # describe-all only: what was measured
    assert re.findall(r"<tr><td>([^<]+)</td>", partial) == ["f1_iou33", "n_images"]
    table = robustness_table({**_metrics(), "robustness": _robust()})
    assert re.findall(r"<th>([^<]+)</th>", table) == ["perturbation", "severity", *(c.key for c in PERTURBED)]
    assert table.count("<tr><td>") == 3  # clean, then each perturbation


def test_cli_summary_shows_the_reported_columns(capsys):
    from flows.cli import _print_summary

    metrics = headline(_metrics())
    summary = {"status": "trained", "month": "2026-01", "metrics": {"fp32": metrics, "int8": metrics},
               "gate_passed": True, "gate": "PASSED", "promoted": True, "model_version": "1",
               "dataset_version": "abc", "mlflow_run_id": "r1"}
    _print_summary(summary, Config())
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert _cells(lines[0]) == ["metric", "fp32", "int8"]
    assert [_cells(line)[0] for line in lines[1:]] == list(REPORTED)
    assert "| center_rmse_px | - | - |" in lines and "| n_images | 3 | 3 |" in lines


def test_flow_metrics_artifact_has_the_reported_columns(monkeypatch):
    import tasks.registry as reg

    seen = {}
    monkeypatch.setattr(reg, "create_table_artifact", lambda key, table, description: seen.update(table=table))
    reg.metrics_table({"fp32": {"f1_iou33": 0.91234}, "int8": headline(_metrics())})
    assert [list(r) for r in seen["table"]] == [["model", *REPORTED]] * 2
    assert seen["table"][0]["f1_iou33"] == 0.9123 and seen["table"][0]["answer_f1_locate"] is None
