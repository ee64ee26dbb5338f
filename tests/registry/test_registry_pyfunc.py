"""The registered pyfunc model answers through MLflow's own loader, with the real tiny model."""
from __future__ import annotations

import base64
import json

import mlflow.pyfunc
import pandas as pd
import pytest

from components.qa.grammar import parse
from components.registry import registry, tracking

pytestmark = pytest.mark.model  # the session's tiny trained model (tests/conftest.py)


def test_predict_through_mlflow(cfg, tiny_model, boards):
    run_id = tracking.start_run(cfg, "train")
    registry.promote(cfg, registry.register_candidate(cfg, run_id, tiny_model.model("quantize"), {}, "d1"))
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


# Run in a fresh interpreter: load the registered model with MLflow's loader, answer one
# question, then list the distributions that the project modules on that path import.
_IMPORTS = r"""
import ast, json, sys
from importlib.metadata import packages_distributions
import mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
model.predict(pd.DataFrame({"image": [sys.argv[2]], "question": ["Any spurs?"], "template": [None]}))
names = {"mlflow"}
for mod in list(sys.modules.values()):
    if (getattr(mod, "__name__", "") or "").split(".")[0] == "components" and getattr(mod, "__file__", None):
        for node in ast.walk(ast.parse(open(mod.__file__).read())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
dists = packages_distributions()
print(json.dumps({n: sorted(d.lower() for d in dists[n]) for n in sorted(names)
                  if n in dists and n != "components" and n not in sys.stdlib_module_names}))
"""


def test_registered_requirements_cover_what_the_answering_path_imports(cfg, tiny_model, boards, tmp_path):
    import subprocess
    import sys

    run_id = tracking.start_run(cfg, "train")
    version = registry.register_candidate(cfg, run_id, tiny_model.model("quantize"), {}, "d1")
    pyfunc_dir = registry.resolve(cfg, f"models:/{cfg.registered_model}/{version}").parent.parent
    out = subprocess.run([sys.executable, "-c", _IMPORTS, str(pyfunc_dir), boards[0].test_path],
                         capture_output=True, text=True, check=True)
    imported = json.loads(out.stdout.strip().splitlines()[-1])  # module -> the distributions providing it
    listed = {line.split("==")[0].strip().lower() for line in (pyfunc_dir / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    assert {"torch", "torchvision", "transformers", "mlflow"} <= set(imported), imported
    missing = {m: d for m, d in imported.items() if not set(d) & listed}
    assert not missing, f"imported on the answering path but not in the model's requirements: {missing}"
