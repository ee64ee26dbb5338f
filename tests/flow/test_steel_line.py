"""The steel line end to end (issue 18's acceptance), with a tiny model: a Pascal VOC drop of
generated 200 x 200 grey strip crops (a texture with a drawn defect of each of the six NEU
classes, one folder per coil = board group, no templates) goes through `defectqa retrain
--line steel` (real Prefect, MLflow, DVC, GX), registers `defect-vlm-steel`, prints the gate
verdict; `defectqa evaluate --line steel --export` writes class-named result files and
`defectqa ask --line steel` reads a steel question."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from benchmarks.steel_drop import CLASSES, draw_defect, write_voc
from components.data.split import group_hash_share
from tests.conftest import REPO, TINY

pytestmark = [pytest.mark.flow, pytest.mark.slow]

PER_GROUP = 6


def _groups() -> list[str]:
    """Coil names whose stable hash puts one in eval, one in calib and three in train."""
    names = [f"coil-{i:02d}" for i in range(200)]
    ev = [n for n in names if group_hash_share(n) < 0.2][:1]
    cal = [n for n in names if 0.2 <= group_hash_share(n) < 0.3][:1]
    train = [n for n in names if group_hash_share(n) >= 0.3][:3]
    return ev + cal + train


def make_steel_drop(dest: Path) -> Path:
    """One defect per crop, the classes in turn, at places spread over the crop."""
    n = 0
    for group in _groups():
        (dest / group).mkdir(parents=True)
        for k in range(PER_GROUP):
            cls, im = CLASSES[(n + k) % len(CLASSES)], Image.new("L", (200, 200), 128)
            draw = ImageDraw.Draw(im)
            for y in range(0, 200, 4):
                draw.line((0, y, 200, y + (n + k) % 5), fill=118 + (y * 7 + n) % 20)
            box = draw_defect(draw, cls, 30 + 11 * k, 40 + 13 * (k % 5))
            write_voc(dest / group, f"{group}_{k:02d}", im, [(cls, box)])
        n += PER_GROUP
    return dest


def _cli(work: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_HOME": str(work / "prefect"), "HF_HUB_OFFLINE": "1",
           "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{work / 'prefect' / 'prefect.db'}"}
    env.pop("PREFECT_API_URL", None)
    sets = [a for s in TINY + [f"paths.workdir={work / 'state'}"] for a in ("--set", s)]
    return subprocess.run([sys.executable, "-m", "flows.cli", *args, "--line", "steel", "--params", "none", *sets],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def steel(tmp_path_factory):
    work = tmp_path_factory.mktemp("steel")
    (work / "prefect").mkdir()
    drop = make_steel_drop(work / "drop")
    done = _cli(work, "retrain", "--drop", str(drop), "--month", "2026-01", "--map", "Scratch=scratches")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return work, drop, done


def test_a_voc_drop_of_steel_crops_goes_through_the_monthly_flow(steel):
    work, _, done = steel
    assert "Gate PASSED" in done.stdout or "Gate FAILED" in done.stdout
    # the gate does not judge template false alarms on a line with no references, and says so
    assert "template_false_alarm: not judged" in done.stdout + done.stderr
    accepted = (work / "state" / "lines" / "steel" / "data").rglob("*.csv")
    assert any("scratches" in p.read_text() for p in accepted) and not (work / "state" / "data").exists()
    from components import config
    from components.registry import registry

    cfg = config.load(None, TINY + [f"paths.workdir={work / 'state'}"], "steel")
    assert cfg.registered_model == "defect-vlm-steel"
    assert [v["version"] for v in registry.list_versions(cfg)] == ["1"]
    models = _cli(work, "models")
    assert models.returncode == 0 and "challenger" in models.stdout, models.stderr[-2000:]
    assert "defect-vlm-steel (line steel):" in models.stdout


def test_evaluate_exports_class_named_results_and_ask_reads_a_steel_question(steel):
    work, drop, _ = steel
    held_out = drop / _groups()[0]
    out = work / "export"
    model = "models:/defect-vlm-steel/1"
    ev = _cli(work, "evaluate", "--data", str(held_out), "--model", model, "--export", str(out),
              "--report", str(work / "report"))
    assert ev.returncode == 0, ev.stderr[-3000:]
    metrics = json.loads(ev.stdout.strip().splitlines()[-1])
    assert metrics["n_images"] == PER_GROUP and metrics["n_templates"] == 0
    files = sorted(p.name for p in out.glob("*.txt"))
    assert files == sorted(f"{p.stem}.txt" for p in held_out.glob("*.jpg"))
    for f in out.glob("*.txt"):
        for line in f.read_text().splitlines():
            assert line.split(",")[5] in CLASSES
    image = next(held_out.glob("*.jpg"))
    ask = _cli(work, "ask", str(image), "Any scratches?", "--model", model)
    assert ask.returncode == 0, ask.stderr[-3000:]
    answer = json.loads(ask.stdout[ask.stdout.index("{"):])
    assert all(d["class"] == "scratches" for d in answer["defects"])
    said = answer["message"].lower()
    assert "board" not in said and "pcb" not in said, said  # the steel model's own words
    if answer.get("asked", {}).get("classes") == ["scratches"] or answer["defects"]:  # the tiny model read it
        assert "scratch" in said, said
    off = _cli(work, "ask", str(image), "What is the weather?", "--model", model)
    assert off.returncode == 0, off.stderr[-3000:]
    message = json.loads(off.stdout[off.stdout.index("{"):])["message"]
    if "I can only answer" in message:  # the tiny model may or may not decline it
        assert "on this strip" in message and "rolled-in scales" in message
