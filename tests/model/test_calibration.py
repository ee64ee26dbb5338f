"""Calibration is fitted and applied apart for boards with and without their template."""
import json
import math

import pytest

from components.model.inference import Inspector
from components.model.vlm import META_FILE

pytestmark = pytest.mark.model  # the session's tiny trained model (tests/conftest.py)


def test_both_calibrations_are_fitted_and_shipped(tiny_model):
    figures = json.loads((tiny_model.dir("calibrate") / "stage.json").read_text())
    meta = json.loads((tiny_model.model("quantize") / META_FILE).read_text())
    for key, prefix in (("calibration", "calib"), ("calibration_no_template", "calib_no_template")):
        assert set(meta[key]) == {"a", "b"}
        assert f"{prefix}_detections" in figures and f"{prefix}_ece_after" in figures


def test_boards_asked_alone_get_the_no_template_calibration(tiny_model, boards):
    inspector = Inspector.load(tiny_model.model("calibrate"))
    # a = 0: every calibrated confidence becomes sigmoid(b), whatever the score.
    inspector.vlm.meta.calibration = {"a": 0.0, "b": 2.0}
    inspector.vlm.meta.calibration_no_template = {"a": 0.0, "b": -2.0}
    inspector.vlm.meta.region_floor = inspector.vlm.meta.refiner["floor"] = 0.0  # regions in both modes
    pair = (boards[0].test_path, boards[0].template_path)
    with_template, alone = inspector.regions_batch([pair, (boards[0].test_path, None)])
    assert with_template and alone
    assert all(d.conf == pytest.approx(1 / (1 + math.exp(-2.0))) for d in with_template)
    assert all(d.conf == pytest.approx(1 / (1 + math.exp(2.0))) for d in alone)
