"""The pyfunc wrapper through MLflow's own loader, with a stand-in Inspector."""
from __future__ import annotations

import base64
import json
import sys
import types
from types import SimpleNamespace

import mlflow.pyfunc
import pandas as pd
from PIL import Image

from components.registry import registry, tracking


class FakeInspector:
    """Stands in for components.model.inference.Inspector (not the subject here)."""

    def __init__(self, text):
        self.text = text

    @classmethod
    def load(cls, folder):
        from pathlib import Path

        return cls((Path(folder) / "weights.txt").read_text())

    def ask(self, image, question, template=None):
        answer = {"model": self.text, "size": list(image.size), "template": template is not None}
        return SimpleNamespace(answer_text=f"{question} -> {self.text}",
                               answer=SimpleNamespace(to_dict=lambda: answer))


def test_predict_through_mlflow(cfg, model_dir, tmp_path, monkeypatch):
    fake = types.ModuleType("components.model.inference")
    fake.Inspector = FakeInspector
    monkeypatch.setitem(sys.modules, "components.model.inference", fake)

    run_id = tracking.start_run(cfg, "train")
    registry.promote(cfg, registry.register_candidate(cfg, run_id, model_dir("w1"), {}, "d1"))
    pyfunc_dir = registry.resolve(cfg, "@champion").parent.parent  # <model>/artifacts/<folder>
    model = mlflow.pyfunc.load_model(str(pyfunc_dir))

    img = tmp_path / "board.png"
    Image.new("L", (32, 24)).save(img)
    b64 = base64.b64encode(img.read_bytes()).decode()
    df = pd.DataFrame({"image": [str(img), b64], "question": ["q1", "q2"], "template": [None, b64]})
    out = [json.loads(s) for s in model.predict(df)]
    assert out[0] == {"answer_text": "q1 -> w1", "answer": {"model": "w1", "size": [32, 24], "template": False}}
    assert out[1]["answer"]["template"] is True
