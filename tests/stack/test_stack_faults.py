"""Faults the monthly service survives, on the real stack: two runs at once, the MLflow server
going away mid-run."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from components.pipeline import RunLayout
from components.train.stages import DONE
from tests.stack.conftest import cfg_of, read_run, run_month, start_month, wait_for

pytestmark = pytest.mark.stack

SPATIAL_DONE = str(RunLayout(Path("runs/*")).dir("spatial") / DONE)
"""Glob, under the workdir, of every run's finished spatial stage."""
# Few, quick HTTP retries for the flow's MLflow client, so a server that is down fails the run
# in seconds here (the defaults retry for minutes).
QUICK_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


def _versions_of(service, month: str) -> list[str]:
    from components.registry import registry

    return [v["version"] for v in registry.list_versions(cfg_of(service)) if v["tags"].get("month") == month]


def test_two_runs_at_once_one_waits_and_the_month_is_trained_once(service):
    a, b = start_month(service, "2026-01"), start_month(service, "2026-01")
    both_running = False
    while not (read_run(a.id).state.is_final() and read_run(b.id).state.is_final()):
        both_running |= read_run(a.id).state.is_running() and read_run(b.id).state.is_running()
        time.sleep(0.5)
    assert not both_running
    assert read_run(a.id).state.is_completed() and read_run(b.id).state.is_completed()
    assert len(_versions_of(service, "2026-01")) == 1  # the second found the month registered


def test_mlflow_going_away_fails_the_run_by_name_and_a_rerun_resumes(service):
    from components.registry import registry, tracking

    stack, state = service.stack, service.state
    trained = set(state.glob(SPATIAL_DONE))
    run = start_month(service, "2026-02", QUICK_RETRIES)
    # Stop the server once this month's spatial stage is done: mid-training.
    wait_for(run.id, lambda r: set(state.glob(SPATIAL_DONE)) - trained or r.state.is_final())
    stack.stop("mlflow")
    try:
        failed = wait_for(run.id, lambda r: r.state.is_final())
    finally:
        stack.start("mlflow")
    assert failed.state.is_failed()
    assert f"MLflow tracking server {stack.urls['mlflow']} could not be reached" in failed.state.message
    (spatial,) = set(state.glob(SPATIAL_DONE)) - trained
    trained_at = spatial.stat().st_mtime
    cfg = cfg_of(service)
    assert registry.champion(cfg) in (None, "1") and not _versions_of(service, "2026-02")

    rerun = run_month(service, "2026-02")
    assert rerun.state.is_completed(), rerun.state.message
    assert spatial.stat().st_mtime == trained_at  # the finished stages were not trained again
    assert len(_versions_of(service, "2026-02")) == 1
    runs = tracking.client(cfg).search_runs([tracking.setup(cfg)], "tags.month = '2026-02'")
    status = sorted((r.info.status, r.data.tags.get("failure.reason", "")) for r in runs)
    assert [s for s, _ in status] == ["FAILED", "FINISHED"]
    assert "could not be reached" in status[0][1]


def _kill_group_of(pid: int) -> None:
    import os
    import signal

    group = os.getpgid(pid)
    assert group != os.getpgrp()  # never this test's own group
    os.killpg(group, signal.SIGKILL)


def test_a_killed_worker_run_is_crashed_closed_and_resumed_by_the_rerun(service):
    """SIGKILL of the worker and of the flow it runs, mid-training: Prefect marks the run Crashed
    (no heartbeats), the rerun resumes from the finished stages, registers one version, and the
    killed MLflow run is closed KILLED with why."""
    from components.registry import tracking

    stack, state = service.stack, service.state
    cfg = cfg_of(service)
    assert run_month(service, "2026-01").state.is_completed()  # the held-out boards (if not trained yet)
    trained = set(state.glob(SPATIAL_DONE))
    run = start_month(service, "2026-03")
    wait_for(run.id, lambda r: set(state.glob(SPATIAL_DONE)) - trained or r.state.is_final())
    (mlflow_run,) = tracking.client(cfg).search_runs([tracking.setup(cfg)], "tags.month = '2026-03'")
    _kill_group_of(int(mlflow_run.data.tags["pid"]))  # the flow's process
    _kill_group_of(stack.info()["services"]["worker"]["pid"])
    stack.up()  # a new worker
    crashed = wait_for(run.id, lambda r: r.state.is_final(), timeout=4 * 60)
    assert crashed.state.is_crashed(), crashed.state
    (spatial,) = set(state.glob(SPATIAL_DONE)) - trained
    trained_at = spatial.stat().st_mtime

    rerun = run_month(service, "2026-03")
    assert rerun.state.is_completed(), rerun.state.message
    assert spatial.stat().st_mtime == trained_at
    assert len(_versions_of(service, "2026-03")) == 1
    runs = {r.info.run_id: r for r in tracking.client(cfg).search_runs([tracking.setup(cfg)], "tags.month = '2026-03'")}
    killed = runs.pop(mlflow_run.info.run_id)
    assert killed.info.status == "KILLED" and "killed" in killed.data.tags["failure.reason"]
    assert [r.info.status for r in runs.values()] == ["FINISHED"]
