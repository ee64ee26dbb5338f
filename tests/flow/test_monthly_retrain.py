"""The whole monthly flow on real boards with a tiny model: real Prefect (local), MLflow
(SQLite), DVC (local remote) and GX. Two months are replayed; the tiny model cannot pass
the gate, so it stays challenger and a hand-promoted champion is left untouched."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import TINY

pytestmark = [pytest.mark.flow, pytest.mark.slow]

GROUPS = {"2026-01": {"group00041": 3, "group77000": 1, "group92000": 2}, "2026-02": {"group44000": 2}}


def make_drop(root: Path, dest: Path, groups: dict[str, int]) -> Path:
    for group, n in groups.items():
        g = group[-5:]
        src_img, src_ann = root / group / g, root / group / f"{g}_not"
        (dest / group / g).mkdir(parents=True)
        (dest / group / f"{g}_not").mkdir(parents=True)
        for test in sorted(src_img.glob("*_test.jpg"))[:n]:
            sid = test.name[:-9]
            for name in (f"{sid}_test.jpg", f"{sid}_temp.jpg"):
                shutil.copyfile(src_img / name, dest / group / g / name)
            shutil.copyfile(src_ann / f"{sid}.txt", dest / group / f"{g}_not" / f"{sid}.txt")
    return dest


def use_local_prefect(work: Path) -> Path:
    """Point this process's Prefect at a home and database under work (returned). Named
    outright: when an earlier test module already loaded Prefect's settings, the temporary
    server otherwise looks for its SQLite file where none can be made."""
    (work / "prefect").mkdir()
    os.environ["PREFECT_HOME"] = str(work / "prefect")
    os.environ["PREFECT_API_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{work / 'prefect' / 'prefect.db'}"
    return work


@pytest.fixture(scope="module")
def replay(tmp_path_factory, deeppcb_dir):
    work = use_local_prefect(tmp_path_factory.mktemp("flow"))
    from flows.monthly_retrain import monthly_retrain

    overrides = TINY + [f"paths.workdir={work / 'state'}", "eval.max_images=0"]
    first = monthly_retrain(str(make_drop(deeppcb_dir, work / "d1", GROUPS["2026-01"])), "2026-01", overrides, "")
    return work, overrides, first


def _cfg(overrides):
    from components import config

    return config.load(None, overrides)


def test_first_month_registers_a_challenger(replay):
    from components.registry import registry

    work, overrides, first = replay
    cfg = _cfg(overrides)
    assert first["model_version"] == "1"
    versions = registry.list_versions(cfg)
    assert [v["version"] for v in versions] == ["1"] and "challenger" in versions[0]["aliases"]
    assert versions[0]["dataset_version"] == first["dataset_version"]
    for name in ("fp32", "int8"):
        m = first["metrics"][name]
        assert m["n_images"] == 2 and m["n_templates"] == 2
        assert {"f1_iou33", "map50", "center_rmse_px", "count_exact", "hallucination_rate",
                "template_false_alarm", "ece", "latency_p95_s", "parse_failure_rate"} <= set(m)
    # The gated model is asked every kind of question, and the gate judges each kind.
    assert {"answer_f1_locate", "answer_f1_spatial", "false_none_rate", "question_read_accuracy"} <= set(first["metrics"]["int8"])
    from components.registry.gate import GATED

    assert "answer_f1_locate" in GATED and f"{len(GATED)} gate checks" in first["gate"]


def test_run_is_tracked_in_mlflow(replay):
    from components.registry import tracking

    _, overrides, first = replay
    cfg = _cfg(overrides)
    run = tracking.client(cfg).get_run(first["mlflow_run_id"])
    assert run.data.tags["dataset_version"] == first["dataset_version"]
    assert run.data.params["train.sft_max_steps"] == "2"
    assert any(k.startswith("spatial/") for k in run.data.metrics)
    assert any(k.startswith("eval_int8/") for k in run.data.metrics)
    paths = {a.path for a in tracking.client(cfg).list_artifacts(run.info.run_id)}
    assert {"data_docs", "evaluation", "validation.json"} <= paths


def test_failed_gate_leaves_champion_untouched_and_second_month_versions_data(replay, deeppcb_dir):
    from components.registry import registry
    from flows.monthly_retrain import monthly_retrain

    work, overrides, first = replay
    cfg = _cfg(overrides)
    assert not first["gate_passed"] and registry.champion(cfg) is None
    assert "failed" in first["gate"].lower() or "not" in first["gate"]
    registry.promote(cfg, "1")
    second = monthly_retrain(str(make_drop(deeppcb_dir, work / "d2", GROUPS["2026-02"])), "2026-02", overrides, "")
    assert second["dataset_version"] != first["dataset_version"]
    assert second["model_version"] == "2" and not second["promoted"]
    assert registry.champion(cfg) == "1"
    assert any(name.startswith("champion") for name in second["metrics"])
    # The verdict compared the two on the same boards, figure by figure.
    # (a figure the tiny model cannot measure on both, e.g. centre error with no match, is noted, not checked)
    assert "champion checks" in second["gate"]


def test_a_month_is_trained_once_and_a_missing_drop_trains_nothing(replay, tmp_path):
    from components.registry import registry
    from flows.monthly_retrain import monthly_retrain

    work, overrides, first = replay
    cfg = _cfg(overrides)
    n = len(registry.list_versions(cfg))
    again = monthly_retrain(str(work / "d1"), "2026-01", overrides, "")
    assert again == {"month": "2026-01", "status": "already trained", "model_version": "1"}
    empty = tmp_path / "2026-07"
    empty.mkdir()
    assert monthly_retrain(str(empty), "2026-07", overrides, "")["status"] == "no drop"
    # No drop folder given: <workdir>/incoming/<month>/, absent here.
    none = monthly_retrain("", "2026-08", overrides, "")
    assert none["status"] == "no drop" and none["drop_dir"].endswith("incoming/2026-08")
    assert len(registry.list_versions(cfg)) == n


def test_a_failed_run_is_closed_failed_with_its_reason(replay, tmp_path):
    from components.registry import tracking
    from flows.monthly_retrain import monthly_retrain

    work, overrides, _ = replay
    cfg = _cfg(overrides)
    bad = tmp_path / "bad" / "group1" / "1"
    bad.mkdir(parents=True)
    (bad / "readme.txt").write_text("not a drop")
    with pytest.raises(Exception) as err:
        monthly_retrain(str(tmp_path / "bad"), "2026-09", overrides, "")
    runs = tracking.client(cfg).search_runs([tracking.setup(cfg)], "tags.month = '2026-09'")
    assert [r.info.status for r in runs] == ["FAILED"]
    assert str(err.value)[:40] in runs[0].data.tags["failure.reason"]


def test_a_killed_run_is_closed_by_the_next_run_of_its_month(replay):
    import subprocess

    from components.registry import tracking

    _, overrides, _ = replay
    cfg = _cfg(overrides)
    gone = subprocess.Popen(["true"])
    gone.wait()  # ended and reaped: like a flow process killed with SIGKILL
    killed = tracking.start_run(cfg, "retrain-2026-10", {"month": "2026-10", **tracking.owner_tags(), "pid": str(gone.pid)})
    live = tracking.start_run(cfg, "retrain-2026-10", {"month": "2026-10", **tracking.owner_tags()})  # this process
    assert tracking.close_dead_runs(cfg, "2026-10") == [killed]
    c = tracking.client(cfg)
    assert c.get_run(killed).info.status == "KILLED" and "killed" in c.get_run(killed).data.tags["failure.reason"]
    assert c.get_run(live).info.status == "RUNNING"


def test_a_reason_the_tracking_server_could_not_take_closes_the_run_later(replay, monkeypatch):
    import dataclasses
    import subprocess

    from mlflow.exceptions import MlflowException

    from components.registry import tracking

    _, overrides, _ = replay
    cfg = _cfg(overrides)
    gone = subprocess.Popen(["true"])
    gone.wait()
    run_id = tracking.start_run(cfg, "retrain-2026-11", {"month": "2026-11", **tracking.owner_tags(), "pid": str(gone.pid)})
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    down = dataclasses.replace(cfg, paths=dataclasses.replace(cfg.paths, tracking_uri="http://127.0.0.1:9"))
    with pytest.raises(MlflowException):
        tracking.fail_run(down, run_id, ValueError("drop rejected: 3 bad rows"))
    err = tracking.unreachable(down, _mlflow_error(down))
    assert err is not None and "http://127.0.0.1:9" in str(err)
    assert tracking.close_dead_runs(cfg, "2026-11") == [run_id]
    run = tracking.client(cfg).get_run(run_id)
    assert run.info.status == "FAILED" and run.data.tags["failure.reason"] == "ValueError: drop rejected: 3 bad rows"


def _mlflow_error(cfg):
    from components.registry import tracking

    try:
        tracking.client(cfg).search_experiments()
    except Exception as exc:  # noqa: BLE001 - the error MLflow gives for a server that is down
        return exc
    raise AssertionError("expected the tracking server to be unreachable")


@pytest.mark.parametrize("override", ["eval.iou=0.5", "data.holdout_groups=group92000,group44000"])
def test_a_stage_reruns_when_a_value_it_reads_changes(replay, override):
    """Prefect's cache: the first month's QA stage is reused as it is, and trained again (in a
    new run folder) when a config value training reads changes."""
    from prefect import flow

    from components.data.split import load_accepted, split_samples
    from components.pipeline import run_key
    from components.train import stages
    from tasks import train

    _, overrides, first = replay

    @flow
    def qa_stage(overrides: list[str]) -> tuple[str, str]:
        cfg = _cfg(overrides)
        lm = stages.lm_samples(split_samples(load_accepted(cfg), cfg), cfg)
        run_dir = str(cfg.paths.runs_dir / run_key(cfg, first["dataset_version"]))
        return train.make_qa(lm, cfg, run_dir, return_state=True).name, run_dir

    assert qa_stage(overrides) == ("Cached", first["run_dir"])
    state, run_dir = qa_stage(overrides + [override])
    assert state == "Completed" and run_dir != first["run_dir"]
