"""`defectqa ablate` on the tiny model's run folder: every row evaluated, RESULTS.md written."""
import json

import pytest
from typer.testing import CliRunner

from components.evaluation.ablate import NOT_DONE, ROWS, minutes_up_to
from flows.cli import app

pytestmark = pytest.mark.model  # the session's tiny trained model (tests/conftest.py)


def test_training_minutes_add_up_to_each_stage():
    figures = {"spatial": {"minutes": 2.0, "steps": 5}, "sft": {"sft_minutes": 1.5}, "dpo": {"dpo_minutes": 0.5},
               "calibrate": {"calib_a": 1.0}, "quantize": {"size_mb_int8": 3.0}}
    assert minutes_up_to("sft", figures) == (3.5, [])
    assert minutes_up_to("quantize", figures) == (4.0, ["calibrate", "quantize"])


def test_ablate_writes_every_row(tiny_model, deeppcb_dir, tmp_path):
    out = tmp_path / "RESULTS.md"
    result = CliRunner().invoke(app, ["ablate", str(tiny_model.root), "--data", str(deeppcb_dir), "--max-images", "1",
                                      "--out", str(out), "--params", "none", "--set", "eval.latency_samples=1"])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert f"`defectqa ablate {tiny_model.root} --data {deeppcb_dir} --out {out} --max-images 1" in text
    table = [line for line in text.splitlines() if line.startswith("| ")]
    for row in ROWS:
        assert any(line.startswith(f"| {row.name} |") for line in table), row.name
    for name, _ in NOT_DONE:
        assert name in text
    lines = [json.loads(line) for line in text.split("```json\n")[1].split("```")[0].splitlines()]
    rows = [r for r in lines if "row" in r]
    assert [r["row"] for r in rows] == [r.name for r in ROWS]
    assert {r["robustness"] for r in lines if "robustness" in r} == {"noise", "blur", "brightness", "jpeg"}
    for r in rows:
        assert r["metrics"]["n_images"] == 1 and "f1_iou33" in r["metrics"] and "latency_p95_s" in r["metrics"]
        assert "APPLIED" not in r["note"]
    by = {r["row"]: r for r in rows}
    assert by["SFT only"]["train_minutes"] <= by["+DPO"]["train_minutes"] <= by["+int8 (served)"]["train_minutes"]
    assert by["+int8 (served)"]["quantize"] == "int8" and by["SFT only"]["quantize"] == "none"
    assert by["no template"]["templates_as_input"] is False and by["+blur check (option)"]["blur_check"] is True
    assert by["+blur check (option)"]["blur_check_same_class"] is False
    assert by["blur check, same class"]["blur_check_same_class"] is True
    assert "blur_check_same_class" not in by["+int8 (served)"]
    robust = [line for line in table if line.split("|")[1].strip() in ("none (clean)", "noise", "blur", "brightness", "jpeg")]
    assert len(robust) == 5  # the served model clean, then under each perturbation
    # `--max-images 1`: the group92000 board asked about is one of the held-out boards.
    assert by["+DPO"]["metrics"]["n_templates"] == 1


def test_ablate_on_a_folder_that_is_not_a_run(tmp_path, deeppcb_dir):
    result = CliRunner().invoke(app, ["ablate", str(tmp_path), "--data", str(deeppcb_dir), "--params", "none"])
    assert result.exit_code == 2 and "no stage model folders" in result.output
