"""Registry mechanics on a real MLflow SQLite store."""
from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from components.registry import registry, tracking
from components.registry.gate import judge
from components.registry.registry import RegistryError
from tests.registry.conftest import GOOD


def _register(cfg, model_dir, text, metrics=GOOD, dataset="2024-01"):
    run_id = tracking.start_run(cfg, f"train-{text}")
    return registry.register_candidate(cfg, run_id, model_dir(text), metrics, dataset)


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)[1:] != ([], []):
        return False
    return all(_same_tree(a / d, b / d) for d in cmp.common_dirs)


def test_promote_and_rollback(cfg, model_dir):
    v1, v2 = _register(cfg, model_dir, "one"), _register(cfg, model_dir, "two")
    assert (v1, v2) == ("1", "2")
    assert registry.champion(cfg) is None
    assert [v["aliases"] for v in registry.list_versions(cfg)] == [[], ["challenger"]]

    assert registry.promote(cfg, v1) is None
    assert registry.promote(cfg, v2) == v1
    versions = registry.list_versions(cfg)
    # challenger stays on the newest candidate; champion is what serves.
    assert [sorted(v["aliases"]) for v in versions] == [[], ["challenger", "champion"]]
    assert versions[1]["metrics"] == GOOD and versions[1]["dataset_version"] == "2024-01"
    assert versions[1]["created"]

    assert registry.rollback(cfg) == v1 and registry.champion(cfg) == v1
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback(cfg)
    assert registry.champion(cfg) == v1


def test_resolve_downloads_the_folder(cfg, model_dir):
    v1 = _register(cfg, model_dir, "alpha")
    registry.promote(cfg, v1)
    v2 = _register(cfg, model_dir, "beta")
    champ = registry.resolve(cfg, f"models:/{cfg.registered_model}@champion")
    assert champ.is_relative_to(cfg.paths.root) and _same_tree(champ, model_dir("alpha"))
    assert registry.resolve(cfg, f"models:/{cfg.registered_model}/{v1}") == champ
    assert _same_tree(registry.resolve(cfg, "@challenger"), model_dir("beta"))
    assert registry.resolve(cfg, v2) == registry.resolve(cfg, "@challenger")
    assert registry.resolve(cfg, str(champ)) == champ  # a plain folder passes through


def test_clear_errors(cfg, model_dir):
    with pytest.raises(RegistryError, match="no champion yet: no registered model"):
        registry.resolve(cfg, "@champion")
    with pytest.raises(RegistryError, match="no champion yet"):
        registry.rollback(cfg)
    _register(cfg, model_dir, "only")
    with pytest.raises(RegistryError, match="has no champion yet"):
        registry.resolve(cfg, f"models:/{cfg.registered_model}@champion")
    with pytest.raises(RegistryError, match=r"has no version 7 \(versions: 1\)"):
        registry.resolve(cfg, f"models:/{cfg.registered_model}/7")
    with pytest.raises(RegistryError, match=r"no alias 'staging' \(aliases: @challenger -> v1\)"):
        registry.resolve(cfg, "@staging")
    with pytest.raises(RegistryError, match="has no version 9"):
        registry.promote(cfg, 9)
    with pytest.raises(RegistryError, match="cannot read model URI"):
        registry.resolve(cfg, f"models:/{cfg.registered_model}/v1")
    assert registry.resolve(cfg, f"models:/{cfg.registered_model}/latest").name == "model-only"
    assert registry.champion_metrics(cfg) is None


def test_failed_gate_leaves_champion(cfg, model_dir):
    v1 = _register(cfg, model_dir, "good")
    assert registry.decide_and_promote(cfg, v1, judge(GOOD, cfg.gate))
    bad = {**GOOD, "center_rmse_px": 25.0}
    v2 = _register(cfg, model_dir, "bad", metrics=bad)
    verdict = judge(bad, cfg.gate)
    assert not registry.decide_and_promote(cfg, v2, verdict)
    assert registry.champion(cfg) == v1
    tags = registry.list_versions(cfg)[1]["tags"]
    assert tags["gate.passed"] == "false" and "center_rmse_px = 25" in tags["gate.summary"]


def test_champion_metrics_come_from_the_same_data(cfg, model_dir):
    registry.promote(cfg, _register(cfg, model_dir, "m", dataset="2024-01"))
    assert registry.champion_metrics(cfg, "2024-01") == GOOD
    assert registry.champion_metrics(cfg, "2024-02") is None  # other data: no comparison
    again = {**GOOD, "ece": 0.03}
    registry.record_evaluation(cfg, registry.champion(cfg), again, "2024-02")
    assert registry.champion_metrics(cfg, "2024-02") == again


def test_tracking_stays_under_workdir(cfg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exp_id = tracking.setup(cfg)
    exp = tracking.client(cfg).get_experiment(exp_id)
    assert exp.name == "defectqa" and exp.artifact_location == (cfg.paths.root / "mlartifacts").as_uri()
    run_id = tracking.start_run(cfg, "eval")
    logged = tracking.log_metrics(cfg, run_id, {"ece": 0.02, "per_class": {"a": 1}, "n": 3}, stage="eval")
    assert logged == {"eval/ece": 0.02, "eval/n": 3.0}
    (tmp_path / "report.html").write_text("<html/>")
    tracking.log_artifacts(cfg, run_id, tmp_path / "report.html", "reports")
    tracking.end_run(cfg, run_id)
    run = tracking.client(cfg).get_run(run_id)
    assert run.data.metrics["eval/ece"] == 0.02 and run.info.status == "FINISHED"
    assert [a.path for a in tracking.client(cfg).list_artifacts(run_id, "reports")] == ["reports/report.html"]
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlartifacts").exists()
    assert run.info.artifact_uri.startswith((cfg.paths.root / "mlartifacts").as_uri())
