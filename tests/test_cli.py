"""The `defectqa` CLI: every command has help; missing models and bad folders give plain errors."""
import json

import pytest
from typer.testing import CliRunner

from flows.cli import app

pytestmark = pytest.mark.model  # the session's tiny trained model (tests/conftest.py)

runner = CliRunner()
COMMANDS = ["retrain", "ingest", "validate", "evaluate", "decisions", "ask", "promote", "rollback", "models", "stage",
            "serve"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_ask_without_champion_says_so(tmp_path, boards):
    result = runner.invoke(app, ["ask", boards[0].test_path, "Any spurs?", "--params", "none",
                                 "--set", f"paths.workdir={tmp_path}"])
    assert result.exit_code == 2
    assert "no champion" in result.output


def test_models_on_an_empty_registry(tmp_path):
    result = runner.invoke(app, ["models", "--params", "none", "--set", f"paths.workdir={tmp_path}"])
    assert result.exit_code == 0 and "no versions" in result.output


def test_unknown_config_key_is_refused(tmp_path):
    result = runner.invoke(app, ["models", "--set", "train.no_such_key=1"])
    assert result.exit_code != 0 and "unknown config key" in result.output


def test_evaluate_prints_json_line_and_exports(tmp_path, tiny_model, deeppcb_dir):
    out = tmp_path / "export"
    result = runner.invoke(app, ["evaluate", "--data", str(deeppcb_dir / "group92000"), "--model",
                                 str(tiny_model.model("quantize")), "--max-images", "2", "--export", str(out),
                                 "--report", str(tmp_path / "report"), "--params", "none"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output.strip().splitlines()[-1])
    assert metrics["n_images"] == 2 and "f1_iou33" in metrics and "latency_p95_s" in metrics
    assert len(list(out.glob("*.txt"))) == 2 and len(list((out / "templates").glob("*.txt"))) == 2
    assert (tmp_path / "report" / "report.html").exists()
    assert "answer_f1_locate" in metrics and (out / "questions.jsonl").exists()


def test_decisions_reports_each_kind(tiny_model, deeppcb_dir):
    result = runner.invoke(app, ["decisions", "--data", str(deeppcb_dir / "group92000"), "--model",
                                 str(tiny_model.model("quantize")), "--max-images", "1", "--params", "none"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.strip().splitlines() if line.startswith("{")]
    assert {"locate", "describe", "spatial", "multi"} <= {r["kind"] for r in rows}
    assert all(0 <= r["tf_reading"] <= 1 and r["n"] > 0 for r in rows)


def test_evaluate_on_a_folder_without_boards(tmp_path, tiny_model):
    result = runner.invoke(app, ["evaluate", "--data", str(tmp_path), "--model", str(tiny_model.model("quantize")),
                                 "--params", "none"])
    assert result.exit_code == 2 and "no DeepPCB '*_test.jpg', VOC '*.xml' or COCO" in result.output


def test_params_yaml_matches_the_config_defaults():
    """params.yaml is the defaults written out; if they drift apart, `make run` silently
    trains with stale values."""
    from pathlib import Path

    from components.config import load

    root = Path(__file__).resolve().parents[1]
    assert load(root / "params.yaml").to_dict() == load(None).to_dict()
