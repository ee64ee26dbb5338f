"""The monthly retraining flow: validate -> version -> QA -> SFT -> DPO -> quantize ->
evaluate -> gate -> register (challenger) -> promote (champion, only if it passes).

Runs locally with no server (Prefect starts a temporary one); point PREFECT_API_URL
at a Prefect server to see it in the UI. Every run lands in MLflow.
"""
from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, get_run_logger

from components.config import Config
from components.evaluation.columns import headline
from components.line import DEFAULT_LINE, WAFER_KIND
from components.pipeline import RunLayout, run_key
from components.registry import tracking
from components.train import stages
from flows.wafer_month import retrain_wafer
from tasks import data, evaluate, registry, train

GATED_MODEL = "int8"  # the gate judges what would be served: the quantize stage's model


def _mlflow_logger(cfg: Config, run_id: str, stage: str):
    """Per-step training losses to MLflow, best effort (never fails a training step)."""
    def log(step: int, values: dict) -> None:
        try:
            tracking.log_metrics(cfg, run_id, values, stage=stage, step=step)
        except Exception:  # noqa: BLE001 - a locked SQLite must not kill an hour of training
            pass
    return log


def _train(cfg: Config, splits: dict, run_dir: str, version: str, run_id: str) -> dict:
    lm = stages.lm_samples(splits, cfg)
    figures = {"qa": train.make_qa(lm, cfg, run_dir)}
    figures["spatial"] = train.train_spatial(splits["train"], cfg, run_dir, version, _mlflow_logger(cfg, run_id, "spatial"), lm)
    figures["sft"] = train.sft(lm, cfg, run_dir, _mlflow_logger(cfg, run_id, "sft"))
    figures["dpo"] = train.dpo(lm, cfg, run_dir, _mlflow_logger(cfg, run_id, "dpo"))
    figures["calibrate"] = train.calibrate(splits["calib"], cfg, run_dir)
    figures["quantize"] = train.quantize(run_dir)
    for stage, values in figures.items():
        train.log_stage(cfg, run_id, stage, headline(values))
    return figures


def _evaluate(cfg: Config, splits: dict, run_dir: str, run_id: str, version: str) -> tuple[dict, str | None]:
    """Metrics per evaluated model, and the champion's evaluation folder (None: no champion)."""
    run = RunLayout(Path(run_dir))
    results = {
        # The gate judges the int8 model; fp32 is shown beside it, describe-all only (time).
        "fp32": evaluate.evaluate(str(run.model("calibrate")), splits["eval"], cfg, str(run.eval("fp32")),
                                  "candidate fp32", False, question_suite=False),
        GATED_MODEL: evaluate.evaluate(str(run.model("quantize")), splits["eval"], cfg, str(run.eval(GATED_MODEL)),
                                       "candidate int8"),
    }
    champ = registry.current_champion(cfg)
    if champ is not None:
        name = f"champion v{champ['version']}"
        results[name] = evaluate.evaluate(champ["model_dir"], splits["eval"], cfg, str(run.eval("champion")), name)
        registry.record_champion_eval(cfg, champ["version"], results[name], version)
    for name, m in results.items():
        tracking.log_metrics(cfg, run_id, m, stage=f"eval_{name.split()[0]}")
    tracking.log_artifacts(cfg, run_id, run.eval(), "evaluation")
    registry.metrics_table(results)
    return results, (str(run.eval("champion")) if champ else None)


def run_month(month: str = "") -> str:
    """The month a run retrains: the one given, else the month of its scheduled start (a
    scheduled run on 2026-03-01 02:00 retrains 2026-03; a manual run, the current month)."""
    from prefect.runtime import flow_run

    return month or flow_run.scheduled_start_time.strftime("%Y-%m")


def _run_name() -> str:
    from prefect.runtime import flow_run

    return f"retrain-{run_month(flow_run.parameters.get('month', ''))}"


@flow(name="monthly_retrain", flow_run_name=_run_name, log_prints=True)
def monthly_retrain(drop_dir: str = "", month: str = "", overrides: list[str] | None = None,
                    params_file: str = "params.yaml", force: bool = False, line: str = DEFAULT_LINE) -> dict:
    """Retrain on everything accepted so far, after validating this month's drop.

    drop_dir empty: `<workdir>/incoming/<month>` (a wafer line's drop may also be one .npz file);
    a missing or empty drop finishes plainly with
    nothing trained; a month already registered is not trained again unless force. line: the
    product line (lines/<line>.yaml) the config is read for."""
    from components import config as config_mod

    cfg = config_mod.load(params_file, overrides, line)
    month = run_month(month)
    drop = Path(drop_dir) if drop_dir else cfg.paths.incoming_dir / month
    if not drop.is_file() and (not drop.is_dir() or not any(p.is_file() for p in drop.rglob("*"))):
        print(f"no drop for {month} (nothing at {drop}); nothing trained")
        return {"month": month, "status": "no drop", "drop_dir": str(drop)}
    with tracking.server_named(cfg):  # an unreachable MLflow server fails the run by its URL
        done = None if force else registry.version_of_month(cfg, month)
        if done is not None:
            print(f"{month} was already trained and registered as version {done}; nothing trained (force=True retrains)")
            return {"month": month, "status": "already trained", "model_version": done}
        run_id = registry.start_run(cfg, month)
        try:
            summary = _retrain(cfg, str(drop), month, run_id)
        except BaseException as exc:
            registry.fail_run(cfg, run_id, tracking.unreachable(cfg, exc) or exc)
            raise
        tracking.end_run(cfg, run_id)
    return summary


def _retrain(cfg: Config, drop_dir: str, month: str, run_id: str) -> dict:
    if cfg.line.kind == WAFER_KIND:
        return retrain_wafer(cfg, drop_dir, month, run_id, _mlflow_logger(cfg, run_id, "wafer"))
    log = get_run_logger()
    ingested = data.ingest(drop_dir, month, cfg)
    checked = data.validate(month, cfg)
    version = checked["dataset_version"]
    tracking.log_validation(cfg, run_id, ingested, checked)
    _log_json(cfg, run_id, "validation.json", {k: checked[k] for k in ("gx_result", "drift", "bad")})
    splits = data.split(cfg)
    log.info("split: %s", {k: len(v) for k, v in splits.items()})
    if not splits["train"] or not splits["eval"]:
        raise ValueError(f"need boards in both train and eval splits, got { {k: len(v) for k, v in splits.items()} }")
    cfg = registry.with_warm_start(cfg)  # before run_key: the weights a warm start begins from are its identity
    run_dir = str(cfg.paths.runs_dir / run_key(cfg, version))
    figures = _train(cfg, splits, run_dir, version, run_id)
    results, champion_eval = _evaluate(cfg, splits, run_dir, run_id, version)
    run = RunLayout(Path(run_dir))
    verdict = registry.judge(results[GATED_MODEL], cfg, str(run.eval(GATED_MODEL)), champion_eval)
    model_version = registry.register(cfg, run_id, str(run.model("quantize")), results[GATED_MODEL], version, month)
    promoted = registry.promote_if_passed(cfg, model_version, verdict["verdict"])
    tracking.set_tags(cfg, run_id, {"model_version": model_version, "gate.passed": str(verdict["passed"]).lower()})
    print(verdict["markdown"])
    return {"month": month, "status": "trained", "dataset_version": version, "model_version": model_version,
            "promoted": promoted, "gate_passed": verdict["passed"], "gate": verdict["summary"], "metrics": results,
            "mlflow_run_id": run_id, "run_dir": run_dir, "figures": figures}


def _log_json(cfg: Config, run_id: str, name: str, payload: dict) -> None:
    tracking.client(cfg).log_text(run_id, json.dumps(payload, indent=2, default=str), name)
