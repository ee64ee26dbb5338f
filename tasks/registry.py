"""Registry tasks: MLflow run bookkeeping, the metric gate, registration and promotion."""
from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from components.config import Config
from components.evaluation.columns import COLUMNS_OF_KIND
from components.line import BOXES_KIND
from components.registry import gate, registry, tracking

_REG = dict(retries=2, retry_delay_seconds=3, cache_policy=NO_CACHE)


@task(name="champion", **_REG)
def current_champion(cfg: Config) -> dict | None:
    """The current champion's version and local folder, or None."""
    version = registry.champion(cfg)
    if version is None:
        return None
    return {"version": version, "model_dir": str(registry.resolve(cfg, f"models:/{cfg.registered_model}/{version}"))}


@task(name="warm-start", **_REG)
def with_warm_start(cfg: Config) -> Config:
    """The config a month trains with: train.warm_start=champion resolved to the champion's folder."""
    return registry.with_warm_start(cfg)


@task(name="gate", cache_policy=NO_CACHE)
def judge(metrics: dict, cfg: Config, candidate_eval: str, champion_eval: str | None) -> dict:
    """The gate verdict as a dict, published as Prefect artifacts; with a champion, the paired
    comparison of the two evaluation folders' per-board sums (same boards)."""
    kind = cfg.line.kind
    comparison = None if champion_eval is None else gate.compare(candidate_eval, champion_eval, cfg.gate, kind)
    verdict = gate.judge(metrics, cfg.gate, comparison, cfg.line.reference, kind)
    create_markdown_artifact(key="gate-verdict", markdown=f"## Gate: {'PASS' if verdict.passed else 'FAIL'}\n\n"
                             f"{verdict.markdown()}\n\n{verdict.summary()}", description="metric gate verdict")
    return {"passed": verdict.passed, "summary": verdict.summary(), "markdown": verdict.markdown(), "verdict": verdict}


@task(name="register", **_REG)
def register(cfg: Config, run_id: str, model_dir: str, metrics: dict, dataset_version: str, month: str) -> str:
    return registry.register_candidate(cfg, run_id, model_dir, metrics, dataset_version, month)


@task(name="month-registered", **_REG)
def version_of_month(cfg: Config, month: str) -> str | None:
    """The version already registered for month, or None."""
    return registry.version_of_month(cfg, month)


@task(name="promote-if-passed", **_REG)
def promote_if_passed(cfg: Config, version: str, verdict) -> bool:
    return registry.decide_and_promote(cfg, version, verdict)


@task(name="record-champion-eval", **_REG)
def record_champion_eval(cfg: Config, version: str, metrics: dict, dataset_version: str) -> None:
    registry.record_evaluation(cfg, version, metrics, dataset_version)


def metrics_table(rows: dict[str, dict], kind: str = BOXES_KIND) -> None:
    """One Prefect table artifact: a row per evaluated model, a column per reported metric of the
    line's kind (evaluation/columns.py; None where a model was not measured on it)."""
    def cell(v):
        return round(v, 4) if isinstance(v, float) else v

    table = [{"model": name, **{c.key: cell(m.get(c.key)) for c in COLUMNS_OF_KIND[kind]}} for name, m in rows.items()]
    create_table_artifact(key="metrics", table=table, description="evaluation on the held-out board groups")


@task(name="mlflow-run", **_REG)
def start_run(cfg: Config, month: str) -> str:
    """A new MLflow run for month, after closing the month's runs whose process died (KILLED)."""
    from prefect.runtime import flow_run

    tracking.setup(cfg)
    tracking.close_dead_runs(cfg, month)
    run_id = tracking.start_run(cfg, f"retrain-{month}", tags={"month": month, **tracking.owner_tags(),
                                                               "prefect.flow_run_id": str(flow_run.id or "")})
    tracking.log_params(cfg, run_id)
    return run_id


def fail_run(cfg: Config, run_id: str, exc: BaseException) -> None:
    """Close the run as FAILED (KILLED when interrupted) with the reason as a tag; never raises,
    since the tracking server may be what failed (the run is then closed by the next run)."""
    try:
        tracking.fail_run(cfg, run_id, exc)
    except Exception as err:  # noqa: BLE001 - report, and let the original error fail the flow
        print(f"could not close MLflow run {run_id}: {err}")
