"""MLflow tracking setup and small logging helpers.

Helpers take an explicit `run_id` and go through `MlflowClient`, because MLflow's
"active run" is per thread and orchestrators run tasks in other threads/processes.
"""
from __future__ import annotations

import math
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

import mlflow
from components.config import Config
from components.evaluation.columns import headline


def is_local(uri: str) -> bool:
    """True for backends that live on this machine (SQLite file, file store)."""
    return urlparse(uri).scheme in ("", "file", "sqlite")


def artifact_location(cfg: Config) -> str:
    """Where a local backend keeps artifacts: `<workdir>/mlartifacts`, as a file URI."""
    return (cfg.paths.root / "mlartifacts").as_uri()


def ensure_store(cfg: Config) -> None:
    """Create the folder of a SQLite store: SQLite creates the file but not its folder."""
    uri = cfg.paths.mlflow_uri()
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)


def client(cfg: Config) -> MlflowClient:
    uri = cfg.paths.mlflow_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def setup(cfg: Config) -> str:
    """Point MLflow at cfg's store and return the id of cfg's experiment (created if needed).

    On a local backend the experiment's artifacts go under the workdir, not the CWD;
    on a server the server's default artifact root (e.g. S3) is used.
    """
    uri = cfg.paths.mlflow_uri()
    ensure_store(cfg)
    # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI, which would then outrank
    # the workdir of every later Config in this process: keep the environment as it was.
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
    c = client(cfg)
    exp = c.get_experiment_by_name(cfg.experiment)
    if exp is None:
        location = artifact_location(cfg) if is_local(uri) else None
        exp_id = c.create_experiment(cfg.experiment, artifact_location=location)
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def start_run(cfg: Config, run_name: str, tags: dict | None = None) -> str:
    """Create a run in the experiment (without making it "active") and return its id."""
    exp_id = setup(cfg)
    return client(cfg).create_run(exp_id, run_name=run_name, tags=tags or {}).info.run_id


def end_run(cfg: Config, run_id: str, status: str = "FINISHED") -> None:
    """status: FINISHED, FAILED or KILLED."""
    client(cfg).set_terminated(run_id, status=status)


def log_params(cfg: Config, run_id: str, params: dict | None = None) -> None:
    """Log params (default: the whole flattened config)."""
    params = cfg.flat() if params is None else params
    items = [Param(str(k), str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):  # MLflow caps params per batch at 100
        client(cfg).log_batch(run_id, params=items[i:i + 100])


def log_metrics(cfg: Config, run_id: str, metrics: dict, stage: str = "", step: int = 0) -> dict[str, float]:
    """Log the numeric, finite entries of `metrics` as `<stage>/<name>`; return what was logged.

    Non-numbers (lists, strings, nested dicts) are skipped: they belong in an artifact.
    """
    prefix = f"{stage}/" if stage else ""
    now = int(time.time() * 1000)
    logged = {f"{prefix}{k}": v for k, v in headline(metrics).items() if math.isfinite(v)}
    batch = [Metric(k, v, now, step) for k, v in logged.items()]
    for i in range(0, len(batch), 1000):
        client(cfg).log_batch(run_id, metrics=batch[i:i + 1000])
    return logged


def log_artifacts(cfg: Config, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
    """Log a file or a whole folder under the run's artifacts (optionally in a subfolder)."""
    path = Path(path)
    if path.is_dir():
        client(cfg).log_artifacts(run_id, str(path), artifact_path)
    elif path.is_file():
        client(cfg).log_artifact(run_id, str(path), artifact_path)
    else:
        raise FileNotFoundError(f"nothing to log at {path}")


def set_tags(cfg: Config, run_id: str, tags: dict) -> None:
    for k, v in tags.items():
        client(cfg).set_tag(run_id, k, str(v))


def owner_tags() -> dict[str, str]:
    """Who runs a run: host and process id, so a later run can tell a killed one from a live one."""
    return {"host": socket.gethostname(), "pid": str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unclosed(cfg: Config, run_id: str) -> Path:
    """Where a run's failure reason waits when the tracking server could not take it."""
    return cfg.paths.root / "unclosed-runs" / f"{run_id}.txt"


def close_dead_runs(cfg: Config, month: str) -> list[str]:
    """Close the month's runs still RUNNING whose process (on this host) is gone: FAILED with the
    reason it left when the tracking server was down, else KILLED (a SIGKILL leaves no chance
    to close a run). Runs of other hosts are left alone."""
    c, closed = client(cfg), []
    exp = c.get_experiment_by_name(cfg.experiment)
    if exp is None:
        return closed
    for run in c.search_runs([exp.experiment_id], f"tags.month = '{month}' and attributes.status = 'RUNNING'"):
        tags, note = run.data.tags, _unclosed(cfg, run.info.run_id)
        if tags.get("host") != socket.gethostname() or not tags.get("pid", "").isdigit() or _alive(int(tags["pid"])):
            continue
        if note.is_file():
            c.set_tag(run.info.run_id, "failure.reason", note.read_text())
            c.set_terminated(run.info.run_id, status="FAILED")
            note.unlink()
        else:
            c.set_tag(run.info.run_id, "failure.reason",
                      f"process {tags['pid']} on {tags['host']} ended without closing this run (killed)")
            c.set_terminated(run.info.run_id, status="KILLED")
        closed.append(run.info.run_id)
    return closed


def failure_reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:5000]


def fail_run(cfg: Config, run_id: str, exc: BaseException) -> None:
    """FAILED (KILLED for an interrupt) with the reason as tag `failure.reason`; when the tracking
    server cannot take it, the reason is kept under the workdir for the month's next run."""
    try:
        client(cfg).set_tag(run_id, "failure.reason", failure_reason(exc))
        end_run(cfg, run_id, "KILLED" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "FAILED")
    except Exception:
        _unclosed(cfg, run_id).parent.mkdir(parents=True, exist_ok=True)
        _unclosed(cfg, run_id).write_text(failure_reason(exc))
        raise


def unreachable(cfg: Config, exc: BaseException) -> Exception | None:
    """A clear error naming the tracking server when exc is MLflow failing to reach it."""
    from mlflow.exceptions import MlflowException

    text = str(exc)
    if isinstance(exc, MlflowException) and ("API request to" in text or "Max retries exceeded" in text):
        return ConnectionError(f"the MLflow tracking server {cfg.paths.mlflow_uri()} could not be reached "
                               f"(after retries with backoff): {text}")
    return None


@contextmanager
def server_named(cfg: Config):
    """Re-raise MLflow failing to reach its server as `unreachable`'s error, which names it."""
    try:
        yield
    except Exception as exc:
        clear = unreachable(cfg, exc)
        if clear is None:
            raise
        raise clear from exc


def log_validation(cfg: Config, run_id: str, ingested: dict, checked: dict) -> None:
    """A validated month on its run, either line kind: the dataset version and drop hash as tags,
    the row counts as metrics, GX's data docs as artifacts."""
    set_tags(cfg, run_id, {"dataset_version": checked["dataset_version"], "drop_hash": ingested["drop_hash"]})
    log_metrics(cfg, run_id, {k: checked[k] for k in ("n_rows", "n_good", "n_bad")}, stage="validate")
    log_artifacts(cfg, run_id, checked["data_docs_dir"], "data_docs")
