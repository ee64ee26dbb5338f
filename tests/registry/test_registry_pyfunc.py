"""The registered pyfunc model answers through MLflow's own loader, with the real tiny model."""
from __future__ import annotations

import base64
import json

import mlflow.pyfunc
import pandas as pd

from components.qa.grammar import parse
from components.registry import registry, tracking


def test_predict_through_mlflow(cfg, tiny_model, boards):
    run_id = tracking.start_run(cfg, "train")
    registry.promote(cfg, registry.register_candidate(cfg, run_id, tiny_model / "int8" / "model", {}, "d1"))
    pyfunc_dir = registry.resolve(cfg, "@champion").parent.parent  # <model>/artifacts/<folder>
    model = mlflow.pyfunc.load_model(str(pyfunc_dir))

    board = boards[0]
    b64 = base64.b64encode(open(board.template_path, "rb").read()).decode()
    df = pd.DataFrame({"image": [board.test_path, board.test_path], "question": ["Any spurs?", "How many defects?"],
                       "template": [None, b64]})
    out = [json.loads(s) for s in model.predict(df)]
    assert len(out) == 2
    for o in out:
        answer = parse(o["answer_text"])
        assert [d["box"] for d in o["answer"]["defects"]] == [list(d.box) for d in answer.detections]
        assert o["answer"]["none_found"] == answer.none_found
