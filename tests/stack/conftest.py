"""Fixtures for the loopback server stack: one stack per test session, in a temporary state
folder on free ports, so it never meets a stack a user started with `make stack-up`.

    stack_session : the session's Stack (brought up once, torn down at the end, even on failure)
    stack         : the same Stack, made whole again first (a test before may have stopped a service)
    stack_env     : the client environment (MLFLOW_TRACKING_URI, PREFECT_API_URL, AWS_*) set for one test
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

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
