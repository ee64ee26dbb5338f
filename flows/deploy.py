"""`defectqa deploy`: register `monthly_retrain` on a Prefect work pool, run at 02:00 UTC on the
first of every month, one run at a time.

Needs a Prefect server (PREFECT_API_URL) and a work pool of type `process` with a worker
(`make stack-up` starts all three). Each scheduled run takes its month from its own scheduled
time and its drop from `<workdir>/incoming/<YYYY-MM>/` (flows/monthly_retrain.py); the worker
runs the flow from this checkout.
"""
from __future__ import annotations

from pathlib import Path

CRON = "0 2 1 * *"
TIMEZONE = "UTC"
ENTRYPOINT = "flows/monthly_retrain.py:monthly_retrain"
REPO = Path(__file__).resolve().parent.parent


def deploy(pool: str = "defectqa", name: str = "monthly", params_file: str = "params.yaml",
           overrides: list[str] | None = None, schedule: bool = True) -> str:
    """Create or update the deployment; returns its id. schedule=False: runs start only on
    request (tests start them by hand with a scheduled time)."""
    from prefect import Flow
    from prefect.schedules import Cron

    flow = Flow.from_source(source=str(REPO), entrypoint=ENTRYPOINT)
    return str(flow.deploy(
        name=name, work_pool_name=pool, schedules=[Cron(CRON, timezone=TIMEZONE)] if schedule else [],
        concurrency_limit=1, parameters={"params_file": params_file, "overrides": list(overrides or [])},
        description="Validate, version, retrain, evaluate, gate and promote the defect-QA model.",
        build=False, push=False, print_next_steps=False))
