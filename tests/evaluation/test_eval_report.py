"""Smoke test of the HTML report on two real DeepPCB boards."""
import base64
import io
import re

from PIL import Image

from components.config import CLASSES, EvalConfig
from components.data.records import read_deeppcb
from components.evaluation.metrics import compute_metrics
from components.evaluation.report import write_report
from components.model.answers import ImageResult
from components.qa.grammar import Answer, Detection


def test_report_embeds_tables_and_images(tmp_path, deeppcb_dir):
    groups = sorted(p for p in deeppcb_dir.iterdir() if p.is_dir())
    samples = read_deeppcb(groups[0], CLASSES)[:2]
    perfect = Answer([Detection(b.cls, (int(b.x1), int(b.y1), int(b.x2), int(b.y2)), 0.9) for b in samples[0].boxes])
    results = [
        ImageResult(samples[0], "test", perfect, 0.1),
        ImageResult(samples[1], "test", Answer([]), 0.2),
        ImageResult(samples[0], "template", Answer([Detection("spur", (10, 10, 50, 50), 0.7)]), 0.1),
        ImageResult(samples[1], "template", Answer([]), 0.1),
    ]
    cfg = EvalConfig(report_overlays=3)
    path = write_report(compute_metrics(results, cfg), results, tmp_path / "report.html", cfg)
    text = path.read_text()
    assert '<table id="headline">' in text and '<table id="per-class">' in text
    assert "f1_iou33" in text and "pin-hole" in text
    jpegs = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', text)
    assert len(jpegs) == 3 and text.count("data:image/png;base64,") == 1
    assert Image.open(io.BytesIO(base64.b64decode(jpegs[0]))).size == (640, 640)
    assert "http://" not in text and "https://" not in text  # self-contained
