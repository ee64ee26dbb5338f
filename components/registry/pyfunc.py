"""The MLflow pyfunc wrapper around the inspection model folder.

The model folder travels as the pyfunc artifact "model_dir"; the inference code is
imported lazily so that logging/registering never needs torch or the model code.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
from pathlib import Path

import mlflow.pyfunc
import pandas as pd

ARTIFACT_KEY = "model_dir"


def load_image(value):
    """A PIL image from a path, a base64 string (optionally a data: URL) or raw bytes."""
    from PIL import Image

    if isinstance(value, Image.Image):
        return value
    if isinstance(value, (bytes, bytearray)):
        return Image.open(io.BytesIO(value))
    text = str(value).strip()
    if text.startswith("data:"):
        text = text.split(",", 1)[-1]
    elif len(text) < 4096 and Path(text).is_file():
        return Image.open(text)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"image is neither an existing file nor base64: {text[:60]!r}") from exc
    return Image.open(io.BytesIO(raw))


def _present(value) -> bool:
    # DataFrame cells for a missing optional column come back as None or NaN.
    return value is not None and not (isinstance(value, float) and value != value) and str(value) != ""


def _rows(model_input) -> list[dict]:
    if hasattr(model_input, "to_dict"):
        return model_input.to_dict(orient="records")
    if isinstance(model_input, dict):
        return [model_input]
    return list(model_input)


class DefectQAModel(mlflow.pyfunc.PythonModel):
    """predict(DataFrame[image, question, template?]) -> list of JSON strings,
    each {"answer_text": str, "answer": {...}}."""

    def load_context(self, context):
        from components.model.inference import Inspector  # heavy (torch); only when served

        self.inspector = Inspector.load(context.artifacts[ARTIFACT_KEY])

    def predict(self, context, model_input: pd.DataFrame, params=None):
        # The DataFrame hint tells MLflow not to infer a schema from hints (SIGNATURE is explicit).
        out = []
        for i, row in enumerate(_rows(model_input)):
            if not _present(row.get("image")) or not _present(row.get("question")):
                raise ValueError(f"row {i}: columns 'image' and 'question' are required")
            template = load_image(row["template"]) if _present(row.get("template")) else None
            result = self.inspector.ask(load_image(row["image"]), str(row["question"]), template=template)
            out.append(json.dumps({"answer_text": result.answer_text, "answer": result.answer.to_dict()}))
        return out


class WaferQAModel(mlflow.pyfunc.PythonModel):
    """The wafer line's model: predict(DataFrame[image, question]) with `image` a bin map as a
    three-grey-level PNG (path, bytes or base64) -> list of JSON strings, each
    {"answer_text": str, "answer": {...}}."""

    def load_context(self, context):
        from components.model.wafer_inspector import WaferInspector  # heavy (torch); only when served

        self.inspector = WaferInspector.load(context.artifacts[ARTIFACT_KEY])

    def predict(self, context, model_input: pd.DataFrame, params=None):
        from components.data.wafer import map_grid

        rows = list(_rows(model_input))
        for i, row in enumerate(rows):
            if not _present(row.get("image")) or not _present(row.get("question")):
                raise ValueError(f"row {i}: columns 'image' (the map) and 'question' are required")
        results = self.inspector.ask_batch([map_grid(load_image(r["image"])) for r in rows],
                                           [str(r["question"]) for r in rows])  # the rows' questions read together
        return [json.dumps({"answer_text": r["answer_text"], "answer": r["answer"]}) for r in results]
