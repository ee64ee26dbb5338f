"""Ingest + validation refuse what they cannot trust, and judge a drop by the configured line.

Real files, real DVC and GX, in tmp folders:
  links   a DeepPCB drop whose test image, template and annotation are symbolic links to
          files outside it, one with its annotation folder linked, and one linked board
          group: each refused by name, none of their bytes in the data area, the rest accepted
  line    a VOC drop of 200 x 200 grey crops with classes scratch, pit (`data.classes`,
          the `line` section's sizes), holding an unknown class, a NaN box, a 640 px image, a linked
          image, a linked annotation and an annotation naming an image outside the drop
"""
from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from components.data.ingest import ingest
from components.data.validate import validate_drop

LINE_CLASSES = ("scratch", "pit")
LINE_SIZE = 200
LOOSE = 0.9  # max_bad_share: these drops are mostly bad rows on purpose


def _reasons(qdir: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with open(Path(qdir) / "reasons.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["id"], []).append(f"{row['file']}: {row['reason']}")
    return out


def _accepted_ids(res) -> set[str]:
    with open(Path(res.accepted_dir) / "manifest.csv", newline="") as fh:
        return {r["sample_id"] for r in csv.DictReader(fh)}


def _data_area_bytes(cfg) -> set[bytes]:
    return {p.read_bytes() for p in cfg.paths.data_dir.rglob("*") if p.is_file()}


def _link(target: Path, link: Path) -> None:
    link.unlink(missing_ok=True)
    os.symlink(target, link)


@pytest.fixture(scope="module")
def links(tmp_path_factory, deeppcb, kit):
    """The DeepPCB drop with links, ingested and validated; its outside files' bytes."""
    tmp = tmp_path_factory.mktemp("links")
    outside, drop = tmp / "outside", tmp / "drop"
    for sid in ("00041000", "00041001", "00041002", "00041003", "00041004", "13000000"):
        kit.put_sample(deeppcb, drop, sid)
    test, temp, ann = kit.real_files(deeppcb, "00041005")
    outside.mkdir()
    for src, name in ((test, "secret_test.jpg"), (temp, "secret_temp.jpg")):
        shutil.copyfile(src, outside / name)
    (outside / "secret.txt").write_text("11 12 53 54 1\n")  # parses: followed, it would be accepted
    img = drop / "group00041" / "00041"
    _link(outside / "secret_test.jpg", img / "00041002_test.jpg")
    _link(outside / "secret_temp.jpg", img / "00041003_temp.jpg")
    _link(outside / "secret.txt", drop / "group00041" / "00041_not" / "00041004.txt")
    notes = drop / "group13000" / "13000_not"
    shutil.move(notes, outside / "notes")
    os.symlink(outside / "notes", notes)  # a linked annotation folder
    kit.put_sample(deeppcb, outside / "board", "20085000")
    os.symlink(outside / "board" / "group20085", drop / "group20085")  # a linked board group
    secrets = {p.read_bytes() for p in outside.rglob("*") if p.is_file()}
    cfg = kit.make_cfg(tmp / "wd", max_bad_share=LOOSE)
    ingest(drop, "2026-01", cfg)
    return {"cfg": cfg, "res": validate_drop("2026-01", cfg), "secrets": secrets}


def test_linked_files_refused_by_name(links):
    reasons = _reasons(links["res"].quarantine_dir)
    expect = {
        "00041002": "group00041/00041/00041002_test.jpg is a symbolic link",
        "00041003": "group00041/00041/00041003_temp.jpg is a symbolic link",
        "00041004": "group00041/00041_not/00041004.txt is a symbolic link",
        "13000000": "group13000/13000_not/13000000.txt lies under the symbolic link group13000/13000_not",
        "group20085": "group20085 is a symbolic link",
    }
    for sid, text in expect.items():
        assert any(f"refused, not read: {text}" in r for r in reasons[sid]), (sid, reasons.get(sid))
    assert set(reasons) == set(expect)
    assert _accepted_ids(links["res"]) == {"00041000", "00041001"}  # nothing else of the drop lost


def test_linked_files_bytes_never_reach_the_data_area(links):
    assert links["secrets"] and not links["secrets"] & _data_area_bytes(links["cfg"])


def _crop(path: Path, size: int, seed: int) -> None:
    """A grey texture with one drawn defect; seed moves it, so every crop's bytes differ."""
    im = Image.new("L", (size, size), 120)
    draw = ImageDraw.Draw(im)
    for y in range(0, size, 7):
        draw.line((0, y, size, (y + seed) % size), fill=100 + seed % 40)
    draw.rectangle((10 + seed, 10, 60 + seed, 70), fill=30)
    im.save(path, "JPEG")


def _voc(path: Path, image: str, cls: str, xmin: str = "10") -> None:
    path.write_text(f"<annotation><filename>{image}</filename><object><name>{cls}</name><bndbox><xmin>{xmin}"
                    "</xmin><ymin>10</ymin><xmax>60</xmax><ymax>70</ymax></bndbox></object></annotation>")


@pytest.fixture(scope="module")
def line(tmp_path_factory, kit):
    """The VOC drop of another product line, validated with its classes and image size from the config."""
    tmp = tmp_path_factory.mktemp("line")
    drop, outside = tmp / "voc", tmp / "outside"
    drop.mkdir()
    outside.mkdir()
    rows = {"s1": "Scratch", "s2": "pit", "s3": "dent", "s4": "pit", "s5": "scratch", "s6": "pit", "s8": "pit"}
    for i, (name, cls) in enumerate(rows.items()):
        _crop(drop / f"{name}.jpg", 640 if name == "s8" else LINE_SIZE, i)
        _voc(drop / f"{name}.xml", f"{name}.jpg", cls, "nan" if name == "s4" else "10")
    for i, name in enumerate(("secret.jpg", "other.jpg")):
        _crop(outside / name, LINE_SIZE, 50 + i)
    _link(outside / "secret.jpg", drop / "s5.jpg")
    _voc(outside / "secret.xml", "s6.jpg", "scratch")
    _link(outside / "secret.xml", drop / "s6.xml")
    _voc(drop / "s7.xml", "../outside/other.jpg", "pit")  # names a file outside the drop
    sizes = {f"{end}_{axis}": LINE_SIZE for end in ("min", "max") for axis in ("width", "height")}
    cfg = kit.make_cfg(tmp / "wd", line=sizes, classes=LINE_CLASSES, max_bad_share=LOOSE)
    ingest(drop, "2026-01", cfg)
    secrets = {(outside / n).read_bytes() for n in ("secret.jpg", "other.jpg")}
    return {"cfg": cfg, "res": validate_drop("2026-01", cfg), "secrets": secrets}


def test_line_vocabulary_and_size_come_from_the_config(line):
    res, reasons = line["res"], _reasons(line["res"].quarantine_dir)
    assert _accepted_ids(res) == {"s1", "s2"}  # Scratch (as scratch) and pit are known, 200 px is the right size
    assert sorted(res.drift["classes"]) == sorted(LINE_CLASSES)
    assert reasons["s3"] == ["voc/s3.txt: unknown class dent"]
    assert any("image width 640 px, expected 200" in r for r in reasons["s8"])


def test_line_non_finite_and_untrusted_files_quarantined(line):
    reasons = _reasons(line["res"].quarantine_dir)
    expect = {
        "s4": "annotation does not parse: s4.xml: <object> 'pit': non-finite coordinate",
        "s5": "refused, not read: s5.jpg is a symbolic link",
        "s6": "refused, not read: s6.xml is a symbolic link",
        "other": "refused, not read: other.jpg lies outside the drop folder",
    }
    for sid, text in expect.items():
        assert any(text in r for r in reasons[sid]), (sid, reasons.get(sid))
    assert set(reasons) == set(expect) | {"s3", "s8"}
    assert not line["secrets"] & _data_area_bytes(line["cfg"])
