"""Validation judges a drop by its line: image sizes within the line's range (not one size), boxes
within their own image, the line's classes, and its reference mode. Real line files, real VOC
drops of generated grey crops, real DVC and GX, in tmp folders:
  range   a line like steel whose crops may be 180-220 px a side: three sizes in range accepted,
          one too wide, one too short and one box past its own (narrower) image quarantined
  steel   lines/steel.yaml itself: 200 x 200 crops of its six classes, no templates, accepted; a
          201 px crop quarantined
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from PIL import Image, ImageDraw

from components import config
from components.data.ingest import ingest
from components.data.validate import templates_required, validate_drop
from tests.conftest import REPO

LOOSE = 0.9  # max_bad_share: these drops are half bad rows on purpose
RANGE = (180, 220)


def _crop(path: Path, size: tuple[int, int], seed: int) -> None:
    """A grey strip texture with one dark drawn defect; seed makes every crop's bytes differ."""
    im = Image.new("L", size, 130)
    draw = ImageDraw.Draw(im)
    for y in range(0, size[1], 5):
        draw.line((0, y, size[0], y + seed % 7), fill=110 + seed % 30)
    draw.ellipse((20 + seed, 20, 60 + seed, 50), fill=40)
    im.save(path, "JPEG")


def _voc(path: Path, image: str, cls: str, box: tuple[int, int, int, int]) -> None:
    x1, y1, x2, y2 = box
    path.write_text(f"<annotation><filename>{image}</filename><object><name>{cls}</name><bndbox><xmin>{x1}</xmin>"
                    f"<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object></annotation>")


def _drop(folder: Path, rows: dict[str, tuple[tuple[int, int], str, tuple[int, int, int, int]]]) -> Path:
    folder.mkdir(parents=True)
    for i, (name, (size, cls, box)) in enumerate(rows.items()):
        _crop(folder / f"{name}.jpg", size, i)
        _voc(folder / f"{name}.xml", f"{name}.jpg", cls, box)
    return folder


def _validated(cfg, drop: Path, workdir: Path):
    cfg.paths.workdir = str(workdir)
    cfg.data.max_bad_share = LOOSE
    ingest(drop, "2026-01", cfg)
    return validate_drop("2026-01", cfg)


def _reasons(res) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with open(Path(res.quarantine_dir) / "reasons.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["id"], []).append(row["reason"])
    return out


def _accepted(res) -> set[str]:
    with open(Path(res.accepted_dir) / "manifest.csv", newline="") as fh:
        return {r["sample_id"] for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def ranged(tmp_path_factory):
    """A line file "strip": steel's, with crops of 180-220 px a side, and its validated drop."""
    tmp = tmp_path_factory.mktemp("range")
    fields = yaml.safe_load((REPO / "lines" / "steel.yaml").read_text())
    lo, hi = RANGE
    fields.update(name="strip", registered_model="defect-vlm-strip", min_width=lo, max_width=hi, min_height=lo, max_height=hi)
    (tmp / "strip.yaml").write_text(yaml.safe_dump(fields, sort_keys=False))
    box = (20, 20, 60, 50)
    drop = _drop(tmp / "drop", {
        "square": ((200, 200), "patches", box),
        "narrow": ((180, 220), "crazing", box),
        "wide": ((220, 180), "scratches", (150, 100, 215, 175)),
        "too_wide": ((240, 200), "inclusion", box),
        "too_short": ((200, 160), "pitted_surface", box),
        "past_edge": ((180, 200), "rolled-in_scale", (150, 20, 200, 60)),  # inside 220, past its own 180
    })
    return _validated(config.load(None, line=tmp / "strip.yaml"), drop, tmp / "wd")


def test_sizes_within_the_line_s_range_are_accepted(ranged):
    assert _accepted(ranged) == {"square", "narrow", "wide"}


def test_sizes_outside_the_range_are_quarantined_with_the_size_named(ranged):
    reasons = _reasons(ranged)
    assert reasons["too_wide"] == ["image width 240 px, expected 180-220"]
    assert reasons["too_short"] == ["image height 160 px, expected 180-220"]
    assert reasons["past_edge"] == ["box out of bounds: box_x_max is 20 px past the image's right edge (its width)"]
    assert set(reasons) == {"too_wide", "too_short", "past_edge"}


@pytest.fixture(scope="module")
def steel(tmp_path_factory):
    """The steel line's own file: one crop per class at 200 x 200, no templates, and one 201 px crop."""
    tmp = tmp_path_factory.mktemp("steel")
    cfg = config.load(None, line="steel")
    rows = {f"neu_{c}": ((200, 200), c, (30, 30, 120, 90)) for c in cfg.data.classes}
    rows["neu_wide"] = ((201, 200), "scratches", (30, 30, 120, 90))
    return _validated(cfg, _drop(tmp / "drop", rows), tmp / "wd")


def test_the_steel_line_accepts_its_crops_and_only_its_size(steel):
    assert _accepted(steel) == {f"neu_{c}" for c in config.load(None, line="steel").data.classes}
    assert _reasons(steel) == {"neu_wide": ["image width 201 px, expected 200"]}


@pytest.mark.parametrize("reference, fmt, required", [
    ("required", "voc", True), ("required", "deeppcb", True),
    ("optional", "deeppcb", True), ("optional", "voc", False), ("optional", "coco", False),
    ("none", "deeppcb", False), ("none", "voc", False),
])
def test_the_reference_mode_decides_whether_templates_are_required(reference, fmt, required):
    assert templates_required(reference, fmt) is required
