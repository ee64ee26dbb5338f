"""The model registry: candidates, the champion alias, rollback and resolving URIs.

Conventions on the registered model `cfg.registered_model`:
- alias `challenger`: the latest registered candidate; alias `champion`: what serves.
- registered-model tag `champion_history`: JSON list of versions, oldest first,
  the last one being the current champion; `rollback` walks it back.
- version tags: `metric.<name>`, `metrics` (JSON), `dataset_version`, `run_id`,
  `eval.<dataset version>` (JSON, from `record_evaluation`), `gate.*` (from
  `decide_and_promote`).
Versions are returned as strings, as MLflow does; int or str is accepted.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
import time
import warnings
from importlib import metadata
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, Schema

import components
import mlflow
from components.config import Config
from components.evaluation.columns import headline
from components.line import LINES_DIR, WAFER_KIND
from components.registry import pyfunc, tracking
from components.registry.gate import Verdict

CHAMPION, CHALLENGER = "champion", "challenger"
HISTORY_TAG = "champion_history"
HISTORY_MAX = 100  # keep the registered-model tag small
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "image"), ColSpec("string", "question"),
                   ColSpec("string", "template", required=False)]),
    outputs=Schema([ColSpec("string")]),
)


class RegistryError(LookupError):
    """A registry lookup failed; the message says what exists instead."""


# ---------------------------------------------------------------- lookups

def _client(cfg: Config):
    tracking.ensure_store(cfg)
    return tracking.client(cfg)


def _model(cfg: Config):
    """The registered model, or None if nothing was registered yet."""
    try:
        return _client(cfg).get_registered_model(cfg.registered_model)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def _versions(cfg: Config) -> list:
    found = _client(cfg).search_model_versions(f"name = '{cfg.registered_model}'")
    return sorted(found, key=lambda v: int(v.version))


def _get_version(cfg: Config, version) -> object:
    try:
        return _client(cfg).get_model_version(cfg.registered_model, str(version))
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    known = ", ".join(str(v.version) for v in _versions(cfg)) or "none"
    raise RegistryError(f"model {cfg.registered_model!r} has no version {version} (versions: {known})")


def _aliases(cfg: Config) -> dict[str, str]:
    model = _model(cfg)
    return {k: str(v) for k, v in (model.aliases if model else {}).items()}


def champion(cfg: Config) -> str | None:
    """The champion's version, or None if no version was promoted yet."""
    return _aliases(cfg).get(CHAMPION)


def _metrics_of(mv) -> dict[str, float]:
    if "metrics" in mv.tags:
        return json.loads(mv.tags["metrics"])
    return {k[len("metric."):]: float(v) for k, v in mv.tags.items() if k.startswith("metric.")}


def list_versions(cfg: Config) -> list[dict]:
    """All versions, oldest first, with aliases, tags, metrics and creation time."""
    by_version: dict[str, list[str]] = {}
    for alias, v in _aliases(cfg).items():
        by_version.setdefault(v, []).append(alias)
    return [{
        "version": str(mv.version),
        "aliases": sorted(by_version.get(str(mv.version), [])),
        "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(mv.creation_timestamp / 1000)),
        "creation_timestamp": mv.creation_timestamp,
        "run_id": mv.run_id,
        "dataset_version": mv.tags.get("dataset_version"),
        "metrics": _metrics_of(mv),
        "tags": dict(mv.tags),
    } for mv in _versions(cfg)]


def _safe_key(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-/]", "_", str(text))


def champion_metrics(cfg: Config, dataset_version: str | None = None) -> dict[str, float] | None:
    """The champion's metrics; None if there is no champion.

    With `dataset_version`, only metrics measured on that evaluation data are
    returned (from registration or `record_evaluation`), else None: comparing
    numbers from different data would be meaningless.
    """
    version = champion(cfg)
    if version is None:
        return None
    mv = _get_version(cfg, version)
    if dataset_version is None or mv.tags.get("dataset_version") == str(dataset_version):
        return _metrics_of(mv)
    stored = mv.tags.get(f"eval.{_safe_key(dataset_version)}")
    return json.loads(stored) if stored else None


def record_evaluation(cfg: Config, version, metrics: dict, dataset_version: str) -> None:
    """Store metrics of an existing version measured on other evaluation data
    (e.g. the champion re-evaluated on this month's holdout)."""
    _get_version(cfg, version)
    clean = headline(metrics)
    _client(cfg).set_model_version_tag(cfg.registered_model, str(version),
                                       f"eval.{_safe_key(dataset_version)}", json.dumps(clean))


# ---------------------------------------------------------------- registering

def _pip_requirements() -> list[str]:
    # Pin what is installed here, without importing it (torch is heavy).
    out = []
    # Every distribution the loading and answering path imports (components.* on that path, checked
    # by tests/registry/test_registry_pyfunc.py): torchvision for the refiner and box matching,
    # rapidfuzz for the question normaliser, tokenizers for the word-level tokenizer, pyyaml for
    # config and question files, peft for a LoRA-trained checkpoint, scipy for the refiner's topology.
    for dist in ("mlflow", "torch", "torchvision", "transformers", "tokenizers", "peft", "numpy", "pillow", "pandas",
                 "pyyaml", "rapidfuzz", "scipy"):
        try:
            out.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            out.append(dist)
    return out


def log_pyfunc(cfg: Config, run_id: str, model_dir: str | Path):
    """Log `model_dir` as a pyfunc model of `run_id`; returns MLflow's ModelInfo."""
    tracking.setup(cfg)
    with warnings.catch_warnings():
        # No input example on purpose: inputs are board images; the signature is explicit.
        warnings.filterwarnings("ignore", message=".*input example was not provided.*")
        # Model.log takes run_id explicitly, so the caller's "active run" state is untouched.
        return Model.log(
            None, name="model", flavor=mlflow.pyfunc, run_id=run_id, flavor_name="pyfunc.CustomPythonModel",
            python_model=pyfunc.WaferQAModel() if cfg.line.kind == WAFER_KIND else pyfunc.DefectQAModel(),
            artifacts={pyfunc.ARTIFACT_KEY: str(Path(model_dir).resolve())},
            # The served model imports components.*, whose config reads the line files (lines/).
            code_paths=[str(Path(components.__file__).parent), str(LINES_DIR)],
            pip_requirements=_pip_requirements(), signature=SIGNATURE,
        )


def version_of_month(cfg: Config, month: str) -> str | None:
    """The latest version registered for month (tag `month`), or None."""
    if _model(cfg) is None:
        return None
    found = [v for v in _versions(cfg) if v.tags.get("month") == month]
    return str(found[-1].version) if found else None


def register_candidate(cfg: Config, run_id: str, model_dir: str | Path, metrics: dict,
                       dataset_version: str, month: str = "") -> str:
    """Log, register and mark as `challenger`; returns the new version."""
    if not Path(model_dir).is_dir():
        raise FileNotFoundError(f"model folder {model_dir} does not exist")
    info = log_pyfunc(cfg, run_id, model_dir)
    clean = headline(metrics)
    tags = {"metrics": json.dumps(clean), "dataset_version": str(dataset_version), "run_id": run_id, "month": month,
            **{f"metric.{k}": repr(v) for k, v in clean.items()}}
    mv = mlflow.register_model(info.model_uri, cfg.registered_model, tags=tags)  # setup() set the registry URI
    _client(cfg).set_registered_model_alias(cfg.registered_model, CHALLENGER, str(mv.version))
    return str(mv.version)


# ---------------------------------------------------------------- champion moves

def _history(cfg: Config) -> list[str]:
    model = _model(cfg)
    return json.loads(model.tags.get(HISTORY_TAG, "[]")) if model else []


def _save_history(cfg: Config, history: list[str]) -> None:
    _client(cfg).set_registered_model_tag(cfg.registered_model, HISTORY_TAG,
                                          json.dumps(history[-HISTORY_MAX:]))


def _set_champion(cfg: Config, version: str) -> None:
    c = _client(cfg)
    c.set_registered_model_alias(cfg.registered_model, CHAMPION, version)
    c.set_model_version_tag(cfg.registered_model, version, "promoted_at", time.strftime("%Y-%m-%dT%H:%M:%S"))


def promote(cfg: Config, version) -> str | None:
    """Make `version` the champion; returns the previous champion (or None)."""
    version = str(_get_version(cfg, version).version)
    previous = champion(cfg)
    history = _history(cfg)
    if previous and (not history or history[-1] != previous):
        history.append(previous)  # the alias was moved outside this module: keep it restorable
    if not history or history[-1] != version:
        history.append(version)
    _set_champion(cfg, version)
    _save_history(cfg, history)
    return previous


def rollback(cfg: Config) -> str:
    """Move `champion` back to the previous champion; returns that version."""
    current = champion(cfg)
    if current is None:
        raise RegistryError(f"model {cfg.registered_model!r} has no champion yet: nothing to roll back")
    history = _history(cfg)
    while history and history[-1] == current:
        history.pop()
    existing = {str(v.version) for v in _versions(cfg)}
    while history and history[-1] not in existing:  # skip deleted versions
        history.pop()
    if not history:
        raise RegistryError(f"version {current} of {cfg.registered_model!r} is the first champion: "
                            "there is no previous champion to roll back to")
    _set_champion(cfg, history[-1])
    _client(cfg).set_model_version_tag(cfg.registered_model, current, "rolled_back_at",
                                       time.strftime("%Y-%m-%dT%H:%M:%S"))
    _save_history(cfg, history)
    return history[-1]


def decide_and_promote(cfg: Config, version, verdict: Verdict) -> bool:
    """Record the gate verdict on the version and promote only if it passed."""
    c = _client(cfg)
    version = str(_get_version(cfg, version).version)
    c.set_model_version_tag(cfg.registered_model, version, "gate.passed", str(verdict.passed).lower())
    c.set_model_version_tag(cfg.registered_model, version, "gate.summary", verdict.summary())
    if verdict.passed:
        promote(cfg, version)
    return verdict.passed


# ---------------------------------------------------------------- resolving

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))$")


def _parse(cfg: Config, uri: str) -> tuple[str, str | None, str | None]:
    """(name, alias, version) from models:/name@alias, models:/name/3, @alias or 3."""
    uri = str(uri).strip()
    if uri.startswith("@"):
        return cfg.registered_model, uri[1:], None
    if uri.isdigit():
        return cfg.registered_model, None, uri
    m = _URI.match(uri)
    if not m or not (m["alias"] or m["version"].isdigit() or m["version"] == "latest"):
        raise RegistryError(f"cannot read model URI {uri!r}: use models:/<name>@<alias>, "
                            "models:/<name>/<version>, @<alias> or a model folder")
    return m["name"], m["alias"], m["version"]


def _version_for(cfg: Config, alias: str | None, version: str | None) -> str:
    if _model(cfg) is None:
        what = "no champion yet: " if alias == CHAMPION else ""
        raise RegistryError(f"{what}no registered model {cfg.registered_model!r} at "
                            f"{cfg.paths.mlflow_uri()}: register a candidate first")
    if alias is None and version == "latest":
        versions = _versions(cfg)
        if not versions:
            raise RegistryError(f"model {cfg.registered_model!r} has no versions")
        return str(versions[-1].version)
    if alias is None:
        return str(_get_version(cfg, version).version)
    aliases = _aliases(cfg)
    if alias in aliases:
        return aliases[alias]
    if alias == CHAMPION:
        raise RegistryError(f"model {cfg.registered_model!r} has no champion yet: "
                            "promote a version first")
    known = ", ".join(f"@{a} -> v{v}" for a, v in sorted(aliases.items())) or "none"
    raise RegistryError(f"model {cfg.registered_model!r} has no alias {alias!r} (aliases: {known})")


def _model_dir_in(pyfunc_dir: Path) -> Path:
    conf = Model.load(str(pyfunc_dir)).flavors["python_function"]
    return pyfunc_dir / conf["artifacts"][pyfunc.ARTIFACT_KEY]["path"]


def _download(cfg: Config, version: str, dest: Path) -> None:
    # Download next to the final place, then rename: a crash never leaves a half cache entry.
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    uri = cfg.paths.mlflow_uri()
    # download_artifacts resolves models:/ through the process-wide registry URI (its
    # registry_uri argument is not used for that): point it at cfg's store first.
    mlflow.set_registry_uri(uri)
    mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{cfg.registered_model}/{version}",
                                        dst_path=str(tmp), tracking_uri=uri, registry_uri=uri)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def cache_dir(cfg: Config) -> Path:
    return cfg.paths.root / "model-cache"


def resolve(cfg: Config, uri: str) -> Path:
    """A local model folder (what Inspector.load reads) for a registry URI or a folder path.

    Registry versions are immutable, so each is downloaded once into
    `<workdir>/model-cache/<name>/v<version>`.
    """
    text = str(uri).strip()
    if not (text.startswith(("models:/", "@")) or text.isdigit()) and Path(text).is_dir():
        return Path(text)
    name, alias, version = _parse(cfg, text)
    if name != cfg.registered_model:
        cfg = _with_model(cfg, name)
    version = _version_for(cfg, alias, version)
    dest = cache_dir(cfg) / _safe_key(name) / f"v{version}"
    source = _get_version(cfg, version).source
    marker = dest / ".source"
    if not (marker.is_file() and marker.read_text() == source):
        _download(cfg, version, dest)
        marker.write_text(source)
    return _model_dir_in(dest)


def with_warm_start(cfg: Config) -> Config:
    """cfg, or with train.warm_start=champion a copy naming the champion's model folder (empty,
    a cold start, while the line has no champion): the run's identity then names the weights it
    starts from."""
    from components.train.warm_start import CHAMPION

    if cfg.train.warm_start != CHAMPION:
        return cfg
    version = champion(cfg)
    folder = str(resolve(cfg, f"models:/{cfg.registered_model}/{version}")) if version else ""
    print(f"warm start: {f'champion v{version} ({folder})' if version else 'no champion yet, a cold start'}")
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, warm_start=folder))


def _with_model(cfg: Config, name: str) -> Config:
    return dataclasses.replace(cfg, registered_model=name)
