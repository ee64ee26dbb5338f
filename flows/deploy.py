"""`defectqa deploy`: register `monthly_retrain` on a Prefect work pool, run at 02:00 UTC on the
first of every month, one run at a time.

Needs a Prefect server (PREFECT_API_URL) and a work pool of type `process` with a worker
(`make stack-up` starts all three). Each scheduled run takes its month from its own scheduled
time and its drop from `<workdir>/incoming/<YYYY-MM>/` (flows/monthly_retrain.py); the worker
runs the flow from this checkout.
"""
from __future__ import annotations

from pathlib import Path

from components.line import DEFAULT_LINE

CRON = "0 2 1 * *"
TIMEZONE = "UTC"
ENTRYPOINT = "flows/monthly_retrain.py:monthly_retrain"
REPO = Path(__file__).resolve().parent.parent
HEARTBEAT_S = 30
"""Seconds between a flow run's heartbeats (Prefect's minimum)."""
CRASHED_AFTER_S = 90
"""A run of the deployment with no heartbeat for this long is marked Crashed (its process died
with the machine or a SIGKILL), which frees the deployment's one run slot for the rerun."""
ZOMBIE_AUTOMATION = "defectqa: crash flow runs without heartbeats"


def deploy(pool: str = "defectqa", name: str = "monthly", params_file: str = "params.yaml",
           overrides: list[str] | None = None, schedule: bool = True, crashed_after_s: int = CRASHED_AFTER_S,
           line: str = DEFAULT_LINE) -> str:
    """Create or update the deployment (and the automation that crashes its dead runs); returns
    its id. schedule=False: runs start only on request."""
    from prefect import Flow
    from prefect.schedules import Cron

    ensure_zombie_automation(crashed_after_s)
    flow = Flow.from_source(source=str(REPO), entrypoint=ENTRYPOINT)
    return str(flow.deploy(
        name=name, work_pool_name=pool, schedules=[Cron(CRON, timezone=TIMEZONE)] if schedule else [],
        concurrency_limit=1, parameters={"params_file": params_file, "overrides": list(overrides or []), "line": line},
        job_variables={"env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_S)}},
        description="Validate, version, retrain, evaluate, gate and promote the defect-QA model.",
        build=False, push=False, print_next_steps=False))


def ensure_zombie_automation(after_s: int = CRASHED_AFTER_S) -> None:
    """Prefect's recipe for zombie runs (docs: "detect zombie flows"): a run whose heartbeats
    stop without a final state is set Crashed. Created once per server."""
    from datetime import timedelta

    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    try:
        if Automation.read(name=ZOMBIE_AUTOMATION):
            return
    except ValueError:  # none of that name yet
        pass
    Automation(
        name=ZOMBIE_AUTOMATION,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"}, posture=Posture.Proactive, threshold=1,
            within=timedelta(seconds=after_s)),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message=f"no heartbeat for {after_s} s: its process died (killed or crashed)")],
    ).create()
