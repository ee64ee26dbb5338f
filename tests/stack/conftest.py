"""Fixtures for the loopback server stack: one stack per test session, in a temporary state
folder on free ports, so it never meets a stack a user started with `make stack-up`.

    stack_session : the session's Stack (brought up once, torn down at the end, even on failure)
    stack         : the same Stack, made whole again first (a test before may have stopped a service)
    stack_env     : the client environment (MLFLOW_TRACKING_URI, PREFECT_API_URL, AWS_*) set for one test
"""
from __future__ import annotations

import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import pytest

from . import infra_stack


@pytest.fixture(scope="session")
def stack_session():
    # Not pytest's tmp_path: /tmp/pytest-of-root is 0700, and the postgres user must enter the cluster folder.
    state = Path(tempfile.mkdtemp(prefix="dq-stack-"))
    stack = infra_stack.Stack(state, infra_stack.free_base_port())
    try:
        try:
            stack.up()
        except infra_stack.StackError as err:
            pytest.fail("the server stack did not come up (PostgreSQL comes from `bash infra/install-stack.sh`):"
                        f"\n{err}", pytrace=False)
        yield stack
    finally:
        stack.down()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def stack(stack_session):
    stack_session.up()  # idempotent: a second or so when everything is healthy
    return stack_session


@pytest.fixture
def stack_env(stack, monkeypatch):
    for key, value in stack.env().items():
        monkeypatch.setenv(key, value)
    return stack.env()


# ---------------------------------------------------------------- the deployment on the stack

FLOW_TIMEOUT_S = 900
"""Longest a tiny-model month may take through the worker on a busy 2-core machine."""
CRASHED_AFTER_S = 60
"""The zombie automation's window here (production: flows/deploy.CRASHED_AFTER_S): two heartbeats."""


class Service(NamedTuple):
    stack: infra_stack.Stack
    state: Path
    """The flows' workdir (paths.workdir): data area, runs, incoming/<month>/ drops."""
    overrides: list[str]
    deployment_id: str
    name: str
    """flow/deployment name for run_deployment."""


@pytest.fixture(scope="module")
def service(stack_session, tmp_path_factory, deeppcb_dir):
    """monthly_retrain deployed on the stack (tiny model, its own workdir and DVC prefix per
    test module), with drops for 2026-01 to 2026-03 waiting in incoming/."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.deploy import deploy
    from tests.conftest import TINY
    from tests.flow.test_monthly_retrain import GROUPS, make_drop

    stack_session.up()
    work = tmp_path_factory.mktemp("service")
    state = work / "state"
    # Its own workdir, DVC prefix, experiment and registered model: the servers are shared by the session.
    overrides = TINY + [f"paths.workdir={state}", "eval.max_images=0", f"paths.dvc_remote=s3://dvc/{work.name}",
                        f"experiment=defectqa-{work.name}", f"registered_model=defect-vlm-{work.name}"]
    for month, groups in {**GROUPS, "2026-03": {"group50600": 2}}.items():
        make_drop(deeppcb_dir, state / "incoming" / month, groups)
    with temporary_settings({PREFECT_API_URL: stack_session.env()["PREFECT_API_URL"]}):
        name = f"test-{work.name}"
        deployment_id = deploy("defectqa", name, "", overrides, crashed_after_s=CRASHED_AFTER_S)
        yield Service(stack_session, state, overrides, deployment_id, f"monthly_retrain/{name}")


def month_start(month: str) -> datetime:
    """02:00 UTC on the first of month: when the schedule starts that month's run."""
    year, mon = map(int, month.split("-"))
    return datetime(year, mon, 1, 2, 0, tzinfo=UTC)


def start_month(service: Service, month: str, env: dict | None = None):
    """A flow run of the deployment scheduled at month's start, not waited for."""
    from prefect.deployments import run_deployment

    return run_deployment(service.name, scheduled_time=month_start(month), timeout=0,
                          job_variables={"env": env} if env else None)


def run_month(service: Service, month: str, env: dict | None = None):
    """The same, waited for until it ends; returns the final flow run."""
    return wait_for(start_month(service, month, env).id, lambda r: r.state.is_final())


def read_run(run_id):
    from prefect import get_client
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def read():
        async with get_client() as client:
            return await client.read_flow_run(run_id)

    return run_coro_as_sync(read())


def wait_for(run_id, done, timeout: float = FLOW_TIMEOUT_S):
    """Poll a flow run until done(run) holds; fails the test with its state after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = read_run(run_id)
        if done(run):
            return run
        time.sleep(1)
    pytest.fail(f"flow run {run_id} still {read_run(run_id).state.type} after {timeout} s")


def cfg_of(service: Service):
    """The flows' config, with the MLflow server as tracking URI (as the worker has it)."""
    from components import config

    return config.load(None, service.overrides + [f"paths.tracking_uri={service.stack.env()['MLFLOW_TRACKING_URI']}"])
