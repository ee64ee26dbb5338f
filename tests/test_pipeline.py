"""The stage declarations (components/pipeline.py) against what the stages really do: the
config values they read, the code they import, dvc.yaml, and the run folder's identity."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components import config
from components.pipeline import SPLIT, STAGES, RunLayout, code_files, dvc_yaml, run_key, stage, value
from tests.conftest import READS, REPO, Recording

pytestmark = pytest.mark.model  # the session's tiny trained model (tests/conftest.py)


def _covered(key: str, declared: tuple[str, ...]) -> bool:
    """A declared `section` covers every `section.key`."""
    return any(key == d or key.startswith(f"{d}.") for d in declared)


def test_every_config_value_a_stage_reads_is_declared(tiny_model):
    reads = json.loads((tiny_model.root / READS).read_text())
    assert set(reads) == {s.name for s in STAGES if s.trains and s.reads}
    for name, keys in reads.items():
        missing = [k for k in keys if not k.startswith("paths.") and not _covered(k, stage(name).reads)]
        assert not missing, f"stage {name} reads {missing}, not in its declared reads (components/pipeline.py)"


def test_the_split_reads_only_what_the_stages_declare(boards):
    from components.data.split import split_samples
    from components.train.stages import lm_samples

    cfg, seen = config.load(None), set()
    lm_samples(split_samples(boards, Recording(cfg, seen)), Recording(cfg, seen))
    assert seen and seen <= {*SPLIT, "train.lm_split"}
    for s in STAGES:
        if s.name != "quantize":  # every other stage is given boards of some split
            assert set(SPLIT) <= set(s.reads) or "data" in s.reads, s.name


def test_dvc_yaml_is_the_declared_pipeline():
    assert (REPO / "dvc.yaml").read_text() == dvc_yaml(), "dvc.yaml is stale: run `defectqa dvc-yaml`"
    stages = yaml.safe_load(dvc_yaml())["stages"]
    assert list(stages) == [s.name for s in STAGES]
    # The gaps that once let stale stages pass: the split for spatial, lm_common for SFT and DPO.
    spatial = stages["spatial"]["params"]
    keys = {p for p in spatial if isinstance(p, str)}
    assert {"data.holdout_groups", "data.calib_groups", "data.holdout_share", "eval.iou"} <= keys
    # What the line sets (its classes and their words) is read from its file, not params.yaml.
    assert {"lines/pcb.yaml": ["words", "items"]} in spatial and "data.classes" not in spatial
    for name in ("sft", "dpo"):
        assert {"components/train/lm_common.py", "components/train/lm_data.py"} <= set(stages[name]["deps"])


def test_code_deps_follow_the_imports_inside_the_stage_function():
    files = code_files("components.train.stages.run_sft")
    assert "components/train/sft.py" in files and "components/train/warmup.py" in files
    assert "components/train/dpo.py" not in files and "components/train/spatial.py" not in files
    assert "components/train/dpo.py" in code_files("components.train.stages.run_dpo")


def test_params_yaml_names_every_dvc_param():
    """DVC reads params from params.yaml, and a line's values from the line's file: a key missing
    there fails `dvc repro`. params.yaml repeats none of the line's (else it would override them)."""
    from components.line import file_key

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    line = yaml.safe_load((REPO / "lines" / "pcb.yaml").read_text())
    for s in STAGES:
        for key in s.reads:
            section, _, name = key.partition(".")
            if file_key(key) is not None:
                assert file_key(key) in line and name not in params.get(section, {}), key
                continue
            assert section in params and (not name or name in params[section]), f"params.yaml lacks {key}"


def test_every_declared_read_is_a_config_value():
    cfg = config.load(None)
    for s in STAGES:
        for key in s.reads:
            value(cfg, key)  # AttributeError names a key the config does not have


@pytest.mark.parametrize("override", ["eval.iou=0.5", "data.holdout_groups=group00041", "train.sft_lr=0.1"])
def test_the_run_folder_changes_with_what_training_reads(override):
    assert run_key(config.load(None, [override]), "v1") != run_key(config.load(None), "v1")


@pytest.mark.parametrize("override", ["gate.min_f1_iou33=0.5", "serve.port=9000", "eval.latency_samples=3"])
def test_the_run_folder_stays_for_what_training_does_not_read(override):
    assert run_key(config.load(None, [override]), "v1") == run_key(config.load(None), "v1")


def test_the_run_folder_is_named_for_the_code_training_runs():
    from components.pipeline import training_code

    code = training_code()
    assert {"components/train/sft.py", "components/model/vlm.py", "components/qa/vocab.py"} <= set(code)
    assert "components/evaluation/report.py" not in code and "components/registry/gate.py" not in code


def test_layout_names_each_folder_once(tmp_path):
    run = RunLayout(tmp_path)
    assert run.model("quantize") == tmp_path / "int8" / "model"
    assert run.dir("calibrate") == tmp_path / "calibrated"
    assert run.eval("champion") == tmp_path / "eval" / "champion"
    with pytest.raises(ValueError, match="writes no model"):
        run.model("qa")
    with pytest.raises(ValueError, match="unknown stage 'int8'"):
        run.dir("int8")


def _dvc(cwd: Path, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def dvc_repo(tmp_path):
    """The repo's dvc.yaml, params.yaml and code in a fresh git + DVC repo, every stage's
    outputs present and committed to dvc.lock (no training: only what DVC compares)."""
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "lines", tmp_path / "lines")
    shutil.copytree(REPO / "components", tmp_path / "components", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    _dvc(tmp_path, "init", "-q")
    version = config.load(None, [f"paths.workdir={tmp_path / '.defectqa'}"]).paths.dataset_version_file
    version.parent.mkdir(parents=True)
    version.write_text("v1\n")
    run = RunLayout(tmp_path / ".defectqa" / "pipeline")
    for s in STAGES:
        run.dir(s.name).mkdir(parents=True, exist_ok=True)
        (run.dir(s.name) / ("report.html" if not s.trains else "stage.json")).write_text("{}")
    (run.eval() / "metrics.json").write_text("{}")
    _dvc(tmp_path, "commit", "-f", "-q")
    return tmp_path


def _stale(repo: Path, section: str, key: str, value) -> set[str]:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    return set(json.loads(_dvc(repo, "status", "--json")))


def test_dvc_reruns_the_stages_that_read_eval_iou(dvc_repo):
    assert json.loads(_dvc(dvc_repo, "status", "--json")) == {}
    assert _stale(dvc_repo, "eval", "iou", 0.5) == {"spatial", "sft", "dpo", "calibrate", "evaluate"}


def test_dvc_reruns_the_stages_that_read_the_line_s_words(dvc_repo):
    """A new inspector word in lines/pcb.yaml changes the questions and the tokenizer: the stages
    that read the words or the classes (the words' keys) rerun."""
    path = dvc_repo / "lines" / "pcb.yaml"
    path.write_text(path.read_text().replace("[burr, burrs]", "[burr, burrs], [whisker, whiskers]"))
    assert set(json.loads(_dvc(dvc_repo, "status", "--json"))) == {"qa", "spatial", "sft", "dpo", "calibrate", "evaluate"}


def test_dvc_reruns_the_stages_that_read_the_held_out_groups(dvc_repo):
    assert _stale(dvc_repo, "data", "holdout_groups", ["group00041"]) == {"qa", "spatial", "sft", "dpo", "calibrate", "evaluate"}
