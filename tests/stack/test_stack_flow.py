"""The monthly flow as a service on the real stack (PostgreSQL, S3 on moto, MLflow server,
Prefect server, a process worker): deployed, run by the worker for two months and an empty
third, with runs, registry, artifacts and data versions where the plant's servers keep them."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.stack.conftest import cfg_of, run_month

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def months(service):
    """Month 1, the champion set by hand, month 2, then a month with no drop: all through the worker."""
    from components.registry import registry

    first = run_month(service, "2026-01")
    assert first.state.is_completed(), first.state.message
    registry.promote(cfg_of(service), "1")
    second = run_month(service, "2026-02")
    assert second.state.is_completed(), second.state.message
    third = run_month(service, "2026-04")
    return first, second, third


def test_the_deployment_is_monthly_on_the_pool_one_run_at_a_time(service):
    from prefect import get_client
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def read():
        async with get_client() as client:
            return await client.read_deployment(service.deployment_id)

    dep = run_coro_as_sync(read())
    assert dep.work_pool_name == "defectqa" and dep.global_concurrency_limit.limit == 1
    assert [(s.schedule.cron, s.schedule.timezone) for s in dep.schedules] == [("0 2 1 * *", "UTC")]


def test_runs_are_named_for_their_month_and_publish_their_metrics(service, months):
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.utilities.asyncutils import run_coro_as_sync

    first, second, third = months
    assert [r.name for r in months] == ["retrain-2026-01", "retrain-2026-02", "retrain-2026-04"]
    assert third.state.is_completed()

    async def keys(run_id):
        async with get_client() as client:
            by_run = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
            found = await client.read_artifacts(artifact_filter=by_run)
            return {a.key for a in found}

    for run in (first, second):
        assert {"metrics", "gate-verdict"} <= run_coro_as_sync(keys(run.id))
    assert "metrics" not in run_coro_as_sync(keys(third.id))  # no drop: nothing trained


def test_runs_and_versions_live_in_postgresql(service, months):
    import psycopg2

    from components.registry import registry, tracking

    stack, state, *_ = service
    cfg = cfg_of(service)
    runs = tracking.client(cfg).search_runs([tracking.setup(cfg)], "tags.month LIKE '2026-0%'")
    assert sorted((r.data.tags["month"], r.info.status) for r in runs) == [("2026-01", "FINISHED"), ("2026-02", "FINISHED")]
    with psycopg2.connect(stack.db_url("mlflow")) as db, db.cursor() as cur:
        cur.execute("SELECT version FROM model_versions WHERE name = %s ORDER BY version", (cfg.registered_model,))
        assert [v for v, in cur.fetchall()] == [1, 2]
        cur.execute("SELECT alias, version FROM registered_model_aliases WHERE name = %s ORDER BY alias",
                    (cfg.registered_model,))
        assert cur.fetchall() == [("challenger", 2), ("champion", 1)]
    assert registry.version_of_month(cfg, "2026-04") is None
    assert not (state / "mlartifacts").exists()  # artifacts went to the server, not a local folder


def test_model_files_are_in_the_s3_bucket(service, months):
    stack = service.stack
    keys = [o["Key"] for page in stack.s3_client().get_paginator("list_objects_v2").paginate(Bucket="mlflow-artifacts")
            for o in page.get("Contents", [])]
    assert any(k.endswith("MLmodel") for k in keys)
    assert sum("/artifacts/model/" in k and k.endswith(".safetensors") for k in keys) >= 2


def test_both_dataset_versions_come_back_from_the_s3_remote(service, months, tmp_path):
    stack, state, *_ = service
    data, fresh = state / "data", tmp_path / "clone"
    # A fresh copy of the data repo: its DVC config and .dvc files, none of the data or the cache.
    tracked = [p for p in data.rglob("*.dvc") if p.is_file()]
    for f in [data / ".dvc" / "config", *tracked]:
        (fresh / f.relative_to(data)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, fresh / f.relative_to(data))
    assert len(tracked) >= 2  # one per accepted month
    subprocess.run([sys.executable, "-m", "dvc", "pull", "-q"], cwd=fresh, env={**os.environ, **stack.env()}, check=True)
    for dvcfile in tracked:
        out = dvcfile.with_suffix("")
        want = sorted(p.relative_to(data) for p in out.rglob("*") if p.is_file())
        got = sorted(p.relative_to(fresh) for p in (fresh / out.relative_to(data)).rglob("*") if p.is_file())
        assert got == want and want


def test_the_service_follows_the_champion_on_the_mlflow_server(service, months, boards):
    """defectqa serve with the server as its registry: answers with the champion's files (fetched
    from S3 through the server) and picks up a promotion."""
    import time

    from fastapi.testclient import TestClient

    from components.registry import registry
    from components.serving.app import create_app

    cfg = cfg_of(service)
    cfg.serve.reload_interval_s = 0.2
    try:
        with TestClient(create_app(cfg)) as client:
            assert client.get("/healthz").json()["model"]["version"] == "1"
            registry.promote(cfg, "2")
            deadline = time.monotonic() + 120
            while client.get("/healthz").json()["model"]["version"] != "2":
                assert time.monotonic() < deadline, "the new champion was never picked up"
                time.sleep(0.2)
            with open(boards[0].test_path, "rb") as f:
                r = client.post("/v1/inspect", files={"image": ("b.jpg", f.read(), "image/jpeg")},
                                data={"question": "Any spurs?"})
            assert r.status_code == 200 and r.json()["model"]["version"] == "2"
    finally:
        registry.rollback(cfg)
