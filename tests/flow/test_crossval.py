"""Leave-one-group-out with a tiny model on real boards: each fold holds out exactly one group,
calibrates on another, is an MLflow run and is judged by the gate; nothing is registered; a
rerun resumes the finished folds and max_minutes stops starting new ones."""
from __future__ import annotations

import pytest

from tests.conftest import TINY
from tests.flow.test_monthly_retrain import make_drop, use_local_prefect

pytestmark = [pytest.mark.flow, pytest.mark.slow]

GROUPS = {"group00041": 3, "group13000": 2, "group77000": 1, "group92000": 1}


@pytest.fixture(scope="module")
def folds(tmp_path_factory, deeppcb_dir):
    work = use_local_prefect(tmp_path_factory.mktemp("crossval"))
    from components import config
    from components.data.ingest import ingest
    from components.data.validate import validate_drop
    from flows.crossval import crossval_flow

    overrides = TINY + [f"paths.workdir={work / 'state'}", "eval.latency_samples=1"]
    cfg = config.load(None, overrides)
    ingest(make_drop(deeppcb_dir, work / "drop", GROUPS), "2026-01", cfg)
    validate_drop("2026-01", cfg)
    result = crossval_flow(["group92000", "group77000"], overrides, "", command="defectqa crossval (test)")
    return cfg, overrides, result


def test_each_fold_holds_out_one_group_and_calibrates_on_another(folds):
    _, _, result = folds
    f92, f77 = result["folds"]["group92000"], result["folds"]["group77000"]
    assert f92["calib_group"] == "group77000"  # the configured calibration group
    assert f77["calib_group"] == "group00041"  # it is held out: the first other group by name
    assert f92["splits"] == {"train": 5, "calib": 1, "eval": 1}
    assert f77["splits"] == {"train": 2 + 1, "calib": 3, "eval": 1}
    for f in (f92, f77):
        assert f["metrics"]["n_images"] == 1 and "answer_f1_locate" in f["metrics"]
        assert isinstance(f["gate_passed"], bool) and "gate checks" in f["gate"]
    assert f92["run_dir"] != f77["run_dir"]


def test_the_summary_has_a_row_per_group_and_the_worst(folds):
    _, _, result = folds
    from pathlib import Path

    table = (Path(result["out"]) / "summary.md").read_text()
    assert [line.split("|")[1].strip() for line in table.splitlines()[2:]] == ["group92000", "group77000", "worst"]
    assert "F1@.33" in table and "F1 locate" in table


def test_folds_are_mlflow_runs_and_nothing_is_registered(folds):
    cfg, _, _ = folds
    from components.registry import registry, tracking

    runs = tracking.client(cfg).search_runs([tracking.setup(cfg)], "tags.crossval = 'group92000'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED" and runs[0].info.run_name == "crossval-group92000"
    assert "eval_int8/f1_iou33" in runs[0].data.metrics
    assert registry.list_versions(cfg) == []


def test_a_rerun_resumes_and_max_minutes_starts_no_new_fold(folds):
    _, overrides, first = folds
    from flows.crossval import crossval_flow

    again = crossval_flow(["group92000", "group77000"], overrides, "", max_minutes=1e-9)
    assert list(again["folds"]) == ["group92000"] and again["skipped"] == ["group77000"]
    assert again["folds"]["group92000"]["run_dir"] == first["folds"]["group92000"]["run_dir"]
    assert again["folds"]["group92000"]["metrics"]["f1_iou33"] == first["folds"]["group92000"]["metrics"]["f1_iou33"]


def test_a_group_not_accepted_is_refused_by_name(folds):
    _, overrides, _ = folds
    from flows.crossval import crossval_flow

    with pytest.raises(ValueError, match="group44000"):
        crossval_flow(["group44000"], overrides, "")
