"""Smoke tests of the real loopback stack: each asserts where the data actually lands."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import httpx
import psycopg2
import pytest

from . import infra_stack

pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]  # the first test pays for the stack's cold start

REPO = infra_stack.REPO


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _query(stack, database: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg2.connect(stack.db_url(database)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def test_up_is_idempotent_and_cli_reports_it(stack):
    pids = {name: rec["pid"] for name, rec in stack.info()["services"].items()}
    assert set(pids) == set(infra_stack.SERVICES)
    stack.up()
    assert {name: rec["pid"] for name, rec in stack.info()["services"].items()} == pids  # nothing restarted
    status = subprocess.run([sys.executable, str(REPO / "infra" / "stack.py"), "status", "--state", str(stack.state)],
                            capture_output=True, text=True)
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.count(" up ") == len(infra_stack.SERVICES)
    env_sh = (stack.state / "env.sh").read_text()
    assert f"export MLFLOW_TRACKING_URI={stack.urls['mlflow']}" in env_sh


def test_mlflow_run_lands_in_postgres_and_artifact_in_s3(stack, stack_env, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    client = MlflowClient(tracking_uri=stack.urls["mlflow"])
    experiment_id = client.create_experiment(_unique("stack-smoke"))
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "f1", 0.75)
    report = tmp_path / "report.txt"
    report.write_text("defectqa stack smoke")
    client.log_artifact(run_id, str(report))
    client.set_terminated(run_id)

    assert client.get_run(run_id).info.artifact_uri.startswith("mlflow-artifacts:")  # proxied by the server
    rows = _query(stack, "mlflow", "SELECT status, experiment_id FROM runs WHERE run_uuid = %s", (run_id,))
    assert rows == [("FINISHED", int(experiment_id))]
    metrics = _query(stack, "mlflow", "SELECT value FROM metrics WHERE run_uuid = %s AND key = 'f1'", (run_id,))
    assert metrics == [(0.75,)]

    s3 = stack.s3_client()
    keys = [obj["Key"] for obj in s3.list_objects_v2(Bucket="mlflow-artifacts").get("Contents", [])]
    key = next((k for k in keys if run_id in k and k.endswith("/report.txt")), None)
    assert key, f"report.txt of run {run_id} not in bucket mlflow-artifacts: {keys}"
    assert s3.get_object(Bucket="mlflow-artifacts", Key=key)["Body"].read() == b"defectqa stack smoke"
    # Nothing went to a local store, neither on the client's side nor in the server's working directory.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.txt"]
    assert not (REPO / "mlartifacts" / experiment_id).exists()


def test_prefect_server_is_healthy_and_stores_in_postgres(stack):
    api = stack.urls["prefect_api"]
    health = httpx.get(f"{api}/health", timeout=10)
    assert health.status_code == 200 and health.json() is True
    name = _unique("stack-smoke-flow")
    created = httpx.post(f"{api}/flows/", json={"name": name}, timeout=10)
    created.raise_for_status()
    assert _query(stack, "prefect", "SELECT name FROM flow WHERE id = %s", (created.json()["id"],)) == [(name,)]


def test_worker_polls_the_defectqa_pool(stack):
    pool = httpx.get(f"{stack.urls['prefect_api']}/work_pools/{infra_stack.WORK_POOL}", timeout=10)
    pool.raise_for_status()
    assert pool.json()["type"] == "process"
    assert pool.json()["status"] == "READY"  # Prefect's word for "a worker is online"
    workers = {w["name"]: w for w in stack.workers()}
    assert workers[infra_stack.WORKER_NAME]["status"] == "ONLINE", workers


def test_mlflow_stop_and_start_keeps_its_data(stack):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=stack.urls["mlflow"])
    name = _unique("stack-restart")
    experiment_id = client.create_experiment(name)

    stack.stop("mlflow")
    assert not stack.healthy("mlflow")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{stack.urls['mlflow']}/health", timeout=5)
    assert stack.status() == {**{n: True for n in infra_stack.SERVICES}, "mlflow": False}

    stack.start("mlflow")
    assert httpx.get(f"{stack.urls['mlflow']}/health", timeout=10).status_code == 200
    assert client.get_experiment(experiment_id).name == name  # the state lives in PostgreSQL, not the server


def _stack_processes(stack) -> set[int]:
    """Every live process of the stack: each service's process group, plus the postmaster's backends
    (PostgreSQL puts each backend in a group of its own)."""
    pids = set()
    for rec in stack.info()["services"].values():
        pids.update(infra_stack.group_members(rec["pgid"]))
    postmaster = stack.info()["services"]["postgres"]["pid"]
    for entry in os.listdir("/proc"):
        stat = infra_stack.proc_stat(int(entry)) if entry.isdigit() else None
        if stat and int(stat[1]) == postmaster:
            pids.add(int(entry))
    return pids


def test_down_leaves_nothing_running(stack):
    """Last in this file: it takes the stack down (the `stack` fixture brings it back for later tests)."""
    running = _stack_processes(stack)
    assert len(running) > len(infra_stack.SERVICES)  # the check below would be vacuous otherwise
    stack.down()
    survivors = [pid for pid in running if (infra_stack.proc_stat(pid) or ["Z"])[0] != "Z"]
    assert survivors == [], f"still running after down: {survivors}"
    assert not any(stack.status().values())
    assert all(infra_stack.port_free(port) for port in stack.ports.values())
    stack.down()  # down again is fine
