"""Leave-one-group-out cross-validation over the accepted data: for each held-out group, train
every stage on the other groups (one calibrates), evaluate the int8 model on the held-out one
with the question suite, and judge it by the gate's thresholds (no champion comparison, nothing
registered or promoted). Each fold is an MLflow run (`crossval-<group>`) and its run folder is
named like a monthly run's (pipeline.run_key), so a rerun resumes finished stages.

Not part of `make run`: a fold trains as long as a month does. `max_minutes` stops starting
new folds once the folds done so far, plus one more of their mean length, would pass it.
"""
from __future__ import annotations

import time
from pathlib import Path

from prefect import flow

from components import config as config_mod
from components.data.split import load_accepted, split_groups, split_samples
from components.data.validate import dataset_version
from components.evaluation import crossval
from components.line import DEFAULT_LINE
from components.pipeline import RunLayout, run_key
from components.registry import tracking
from flows.monthly_retrain import GATED_MODEL, _train
from tasks import evaluate, registry


@flow(name="crossval", log_prints=True)
def crossval_flow(groups: list[str] | None = None, overrides: list[str] | None = None, params_file: str = "params.yaml",
                  line: str = DEFAULT_LINE, max_minutes: float = 0.0, command: str = "") -> dict:
    """Per held-out group (default: every accepted group): metrics, gate verdict, run folder."""
    cfg = config_mod.load(params_file, overrides, line)
    accepted = load_accepted(cfg)
    version = dataset_version(cfg)
    if not accepted or version is None:
        raise ValueError(f"no accepted data in {cfg.paths.area}: ingest and validate months first "
                         "(`defectqa retrain`, or `defectqa ingest` + `defectqa validate`)")
    present = sorted({s.group for s in accepted})
    chosen = list(groups or present)
    out = cfg.paths.root / "crossval" / version[:12]
    folds, skipped, started = {}, [], time.monotonic()
    with tracking.server_named(cfg):
        for g in chosen:
            spent = (time.monotonic() - started) / 60
            if max_minutes and folds and spent + spent / len(folds) > max_minutes:
                skipped.append(g)
            else:
                folds[g] = _fold(crossval.fold_config(cfg, g, present), accepted, version, g)
            # After every group, so a long run's finished folds are on disk.
            text = crossval.write_summary(out, folds, _meta(version, command, chosen, skipped))
    print(text)
    if skipped:
        print(f"not run (max_minutes {max_minutes:g} reached): {', '.join(skipped)}")
    return {"out": str(out), "folds": folds, "skipped": skipped, "table": text}


def _meta(version: str, command: str, chosen: list[str], skipped: list[str]) -> dict:
    return {"dataset_version": version, "command": command, "groups": chosen, "skipped": skipped}


def _fold(cfg, accepted: list, version: str, group: str) -> dict:
    splits = split_samples(accepted, cfg)
    run_dir = str(cfg.paths.runs_dir / run_key(cfg, version))
    run_id = tracking.start_run(cfg, f"crossval-{group}", {"crossval": group, "dataset_version": version,
                                                           **tracking.owner_tags()})
    try:
        tracking.set_tags(cfg, run_id, {f"split.{k}": ",".join(v) for k, v in split_groups(accepted, cfg).items()})
        start = time.monotonic()
        _train(cfg, splits, run_dir, version, run_id)
        eval_dir = RunLayout(Path(run_dir)).eval(f"crossval-{group}")
        metrics = evaluate.evaluate(str(RunLayout(Path(run_dir)).model("quantize")), splits["eval"], cfg,
                                    str(eval_dir), f"fold {group} {GATED_MODEL}")
        tracking.log_metrics(cfg, run_id, metrics, stage=f"eval_{GATED_MODEL}")
        tracking.log_artifacts(cfg, run_id, eval_dir, "evaluation")
        verdict = registry.judge(metrics, cfg, str(eval_dir), None)
        tracking.set_tags(cfg, run_id, {"gate.passed": str(verdict["passed"]).lower()})
    except BaseException as exc:
        tracking.fail_run(cfg, run_id, exc)
        raise
    tracking.end_run(cfg, run_id)
    return {"metrics": metrics, "gate_passed": verdict["passed"], "gate": verdict["summary"], "run_dir": run_dir,
            "eval_dir": str(eval_dir), "minutes": round((time.monotonic() - start) / 60, 1),
            "splits": {k: len(v) for k, v in splits.items()}, "calib_group": cfg.data.calib_groups[0]}
