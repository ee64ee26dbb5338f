"""A product line is one declared file (lines/<name>.yaml) read into the typed config: the real
line files load, a wrong one is refused naming its field, the precedence holds, and every
command that reads the config takes --line."""
from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from components import config
from components.line import DEFAULT_LINE, LineConfig, LineError, file_key, read_line
from flows.cli import app
from tests.conftest import REPO

STEEL_CLASSES = ("crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches")
runner = CliRunner()


def _steel() -> dict:
    return yaml.safe_load((REPO / "lines" / "steel.yaml").read_text())


def _write(folder: Path, fields: dict, name: str = "steel") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(fields, sort_keys=False))
    return path


def test_the_steel_line_loads_into_the_typed_config():
    cfg = config.load(None, line="steel")
    assert cfg.data.classes == STEEL_CLASSES and tuple(cfg.line.words) == STEEL_CLASSES
    assert (cfg.line.name, cfg.line.reference, cfg.registered_model) == ("steel", "none", "defect-vlm-steel")
    assert (cfg.line.min_width, cfg.line.max_width, cfg.line.min_height, cfg.line.max_height) == (200, 200, 200, 200)
    assert ("crack", "cracks") in cfg.line.words["crazing"] and ("scratch", "scratches") in cfg.line.words["scratches"]
    assert all(cfg.line.words[c] for c in STEEL_CLASSES)
    defaults = config.GateConfig()
    assert (cfg.gate.min_f1_iou33, cfg.gate.max_center_rmse_px) == (0.70, 8.0)  # what steel.yaml lists
    assert cfg.gate.min_count_exact == defaults.min_count_exact  # the rest: the gate section's
    assert cfg.model.input_size == config.ModelConfig().input_size  # the model's input size is the model's


def test_the_pcb_line_changes_no_default():
    assert config.load(None, line=DEFAULT_LINE).to_dict() == config.Config().to_dict()
    pcb = read_line("pcb")
    assert pcb.classes == config.CLASSES and pcb.registered_model == "defect-vlm" and pcb.gate == {}
    scalars = {f: getattr(pcb.line, f) for f in ("name", "reference", "min_width", "max_width", "min_height", "max_height")}
    assert scalars == {f: getattr(LineConfig(), f) for f in scalars}  # lines/pcb.yaml restates the defaults


def test_params_yaml_repeats_nothing_a_line_sets():
    """Else params.yaml (the pcb values) would override `--line steel`'s."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    keys = [f"{s}.{k}" if isinstance(v, dict) else s for s, v in params.items() for k in (v if isinstance(v, dict) else [s])]
    assert keys and not [k for k in keys if file_key(k) is not None]
    assert config.load(REPO / "params.yaml", line="steel").data.classes == STEEL_CLASSES


def test_precedence_defaults_line_params_set(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("gate:\n  min_f1_iou33: 0.5\nline:\n  max_width: 256\n")
    assert config.load(None, line="steel").gate.min_f1_iou33 == 0.70  # line over defaults
    cfg = config.load(params, line="steel")
    assert (cfg.gate.min_f1_iou33, cfg.line.max_width) == (0.5, 256)  # params.yaml over the line
    assert cfg.gate.max_center_rmse_px == 8.0 and cfg.line.min_width == 200  # the line's other values stay
    assert config.load(params, ["gate.min_f1_iou33=0.6"], "steel").gate.min_f1_iou33 == 0.6  # --set over all


def test_only_the_line_file_sets_its_name_and_words():
    for key in ("line.words=crazing:crack", "line.name=wafer"):
        with pytest.raises(ValueError, match=r"is the line file's \(lines/steel.yaml\)"):
            config.load(None, [key], "steel")


def test_each_line_keeps_its_months_in_its_own_data_area(tmp_path):
    pcb = config.load(None, [f"paths.workdir={tmp_path}"])
    steel = config.load(None, [f"paths.workdir={tmp_path}"], "steel")
    assert pcb.paths.data_dir == tmp_path / "data" and pcb.paths.runs_dir == tmp_path / "runs"  # as before lines
    area = tmp_path / "lines" / "steel"
    assert (steel.paths.data_dir, steel.paths.incoming_dir, steel.paths.runs_dir, steel.paths.pipeline_dir) == (
        area / "data", area / "incoming", area / "runs", area / "pipeline")
    assert steel.paths.mlflow_uri() == pcb.paths.mlflow_uri()  # one registry for every line
    with pytest.raises(ValueError, match="paths.line is the line file's"):
        config.load(None, ["paths.line=steel"])


def test_values_set_after_the_file_are_checked_too():
    with pytest.raises(LineError, match="field 'min_width': 300 px is above max_width 200 px"):
        config.load(None, ["line.min_width=300"], "steel")


def _drop(fields: dict, key: str) -> None:
    del fields[key]


@pytest.mark.parametrize("change, message", [
    (lambda f: _drop(f, "reference"), "missing field 'reference'"),
    (lambda f: _drop(f, "words"), "missing field 'words'"),
    (lambda f: f.update(colour="grey"), "unknown field 'colour'"),
    (lambda f: f.update(min_width="200px"), "field 'min_width': expected a whole number, got '200px'"),
    (lambda f: f.update(max_height=True), "field 'max_height': expected a whole number, got True"),
    (lambda f: f.update(registered_model=""), "field 'registered_model': expected a non-empty text"),
    (lambda f: f.update(name=7), "field 'name': expected a non-empty text, got 7"),
    (lambda f: f.update(name="strip"), "field 'name': 'strip' is not the file's name 'steel'"),
    (lambda f: f.update(words={}), "field 'words': the vocabulary is empty"),
    (lambda f: f.update(words=["crazing", "scratches"]), "field 'words': the vocabulary is empty or not a mapping"),
    (lambda f: f["words"].update(crazing=[]), "field 'words.crazing': no words"),
    (lambda f: f["words"].update(patches=[["patch"]]), r"field 'words.patches\[0\]': expected \[singular, plural\]"),
    (lambda f: f.update(min_width=300), "field 'min_width': 300 px is above max_width 200 px"),
    (lambda f: f.update(min_height=0, max_height=0), "field 'min_height': 0 px"),
    (lambda f: f.update(reference="sometimes"), "field 'reference': 'sometimes' is not one of required, optional, none"),
    (lambda f: f.update(gate={"min_f1": 0.5}), "field 'gate.min_f1': unknown config key 'gate.min_f1'"),
    (lambda f: f.update(gate={"min_f1_iou33": "high"}), "field 'gate.min_f1_iou33': gate.min_f1_iou33: expected float"),
    (lambda f: f.update(gate={"bootstrap_draws": 10}), "field 'gate.bootstrap_draws': not a threshold"),
    (lambda f: f.update(gate=[0.5]), "field 'gate': expected a mapping"),
    (lambda f: _drop(f, "items"), "missing field 'items'"),
    (lambda f: f.update(items="strip"), "field 'items': expected a list"),
    (lambda f: f["heldout_words"].update(dent=[["dent", "dents"]]), "field 'heldout_words.dent': not a class of this line"),
    (lambda f: f["heldout_words"].update(crazing=[["craze"]]), r"field 'heldout_words.crazing\[0\]': expected"),
])
def test_a_wrong_line_file_is_refused_naming_the_file_and_field(tmp_path, change, message):
    fields = _steel()
    change(fields)
    path = _write(tmp_path, fields)
    with pytest.raises(LineError, match=message) as err:
        config.load(None, line=path)
    assert str(err.value).startswith(f"{path}: ")


def test_a_file_that_is_no_mapping_is_refused(tmp_path):
    path = tmp_path / "steel.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(LineError, match="expected a mapping of fields"):
        read_line(path)
    path.write_text("name: [unclosed\n")
    with pytest.raises(LineError, match="not valid YAML"):
        read_line(path)


def test_an_unknown_line_names_the_lines_there_are():
    with pytest.raises(LineError, match=r"no line 'wafr': lines/wafr.yaml does not exist \(lines: pcb, steel, wafer\)"):
        config.load(None, line="wafr")


def test_line_steel_reaches_the_config_through_the_cli():
    out = subprocess.run([sys.executable, "-m", "flows.cli", "config", "show", "data", "--line", "steel"], cwd=REPO,
                         check=True, capture_output=True, text=True).stdout
    line = next(row for row in out.splitlines() if row.startswith("data.classes "))
    assert line.split()[1] == ",".join(STEEL_CLASSES), line


def test_an_unknown_line_is_a_cli_error():
    result = runner.invoke(app, ["config", "show", "data", "--params", "none", "--line", "wafr"])
    assert result.exit_code != 0 and "no line 'wafr'" in result.output


def test_the_wafer_line_is_a_wafer_map_line_with_the_nine_labels():
    cfg = config.load(None, line="wafer")
    assert cfg.line.kind == "wafer-map" and cfg.registered_model == "defect-vlm-wafer"
    assert cfg.data.classes == ("None", "Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Near-full", "Random",
                                "Scratch")
    assert config.load(None).line.kind == "boxes"


def test_an_unknown_line_kind_is_refused(tmp_path):
    text = (REPO / "lines" / "steel.yaml").read_text().replace("name: steel", "name: odd\nkind: voxels")
    (tmp_path / "odd.yaml").write_text(text)
    with pytest.raises(LineError, match=r"field 'kind': 'voxels' is not one of boxes, wafer-map"):
        read_line(tmp_path / "odd.yaml")


def _commands():
    """(name, callback) of every `defectqa` command, sub-apps included."""
    for command in app.registered_commands:
        yield command.name or command.callback.__name__, command.callback
    for group in app.registered_groups:
        for command in group.typer_instance.registered_commands:
            yield f"{group.name} {command.name}", command.callback


def test_every_command_that_reads_the_config_takes_line():
    with_params = {name: cb for name, cb in _commands() if "params" in inspect.signature(cb).parameters}
    assert {"retrain", "ingest", "validate", "evaluate", "ask", "serve", "stage", "config show"} <= set(with_params)
    for name, cb in with_params.items():
        line = inspect.signature(cb).parameters.get("line")
        assert line is not None and line.default == DEFAULT_LINE, name
