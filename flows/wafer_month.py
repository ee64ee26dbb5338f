"""A month of the wafer line inside `monthly_retrain`: validate -> version -> train (pattern
branch, then the language model's SFT and DPO) -> evaluate on the held-out maps (candidate and
champion, the same maps) -> gate -> register (challenger) -> promote (champion, only if it passes).

The wafer model is small and runs in fp32 as served: there is no separate quantize stage, and
the gate judges the model that would be served.
"""
from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger

from components.config import Config
from components.evaluation.columns import headline
from components.pipeline import wafer_run_key
from components.registry import tracking
from tasks import registry, wafer

CANDIDATE = "candidate"


def retrain_wafer(cfg: Config, drop_dir: str, month: str, run_id: str, train_log) -> dict:
    log = get_run_logger()
    ingested = wafer.ingest(drop_dir, month, cfg)
    checked = wafer.validate(month, cfg)
    version = checked["dataset_version"]
    tracking.log_validation(cfg, run_id, ingested, checked)
    log.info("month %s: %d maps accepted, %d quarantined", month, checked["n_good"], checked["n_bad"])
    run_dir = str(cfg.paths.runs_dir / wafer_run_key(cfg, version))
    figures = wafer.train(cfg, run_dir, train_log)
    tracking.log_metrics(cfg, run_id, headline(figures), stage="train")
    results, champion_eval = _evaluate(cfg, run_dir, run_id)
    candidate_eval = str(Path(run_dir) / "evaluate" / CANDIDATE)
    verdict = registry.judge(results[CANDIDATE], cfg, candidate_eval, champion_eval)
    model_version = registry.register(cfg, run_id, wafer.model_dir(run_dir), results[CANDIDATE], version, month)
    promoted = registry.promote_if_passed(cfg, model_version, verdict["verdict"])
    tracking.set_tags(cfg, run_id, {"model_version": model_version, "gate.passed": str(verdict["passed"]).lower()})
    print(verdict["markdown"])
    return {"month": month, "status": "trained", "dataset_version": version, "model_version": model_version,
            "promoted": promoted, "gate_passed": verdict["passed"], "gate": verdict["summary"], "metrics": results,
            "mlflow_run_id": run_id, "run_dir": run_dir, "figures": {"train": figures}}


def _evaluate(cfg: Config, run_dir: str, run_id: str) -> tuple[dict, str | None]:
    """Figures of the candidate and of the champion (if any) on the same held-out maps, and the
    champion's evaluation folder (None: no champion)."""
    out = Path(run_dir) / "evaluate"
    results = {CANDIDATE: wafer.evaluate(wafer.model_dir(run_dir), cfg, str(out / CANDIDATE), "candidate")}
    champ = registry.current_champion(cfg)
    if champ is not None:
        name = f"champion v{champ['version']}"
        results[name] = wafer.evaluate(champ["model_dir"], cfg, str(out / "champion"), name)
    for name, m in results.items():
        tracking.log_metrics(cfg, run_id, m, stage=f"eval_{name.split()[0]}")
    tracking.log_artifacts(cfg, run_id, out, "evaluation")
    registry.metrics_table(results, cfg.line.kind)
    return results, (str(out / "champion") if champ else None)
