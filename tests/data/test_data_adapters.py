"""Drop adapters: DeepPCB, Pascal VOC and COCO folders read into Sample records."""
from __future__ import annotations

import json
import shutil

import pytest

from components.data.adapters import detect_format, load_drop, normalise_class, read_drop
from components.data.drops import BUNDLED_DROPS, materialise_drop


def _voc_xml(filename: str, objects: list[tuple[str, int, int, int, int]]) -> str:
    objs = "".join(
        f"<object><name>{n}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin>"
        f"<xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>"
        for n, a, b, c, d in objects)
    size = "<size><width>640</width><height>640</height></size>"
    return f"<annotation><filename>{filename}</filename>{size}{objs}</annotation>"


def test_class_aliases():
    assert normalise_class("pinhole") == normalise_class("pin_hole") == normalise_class("Pin-Hole") == "pin-hole"
    assert normalise_class("spurious_copper") == "copper"
    assert normalise_class("mouse_bite") == "mousebite"
    assert normalise_class("scratch") == "scratch"  # kept as-is, quarantined later


def test_deeppcb_detected_and_read(tmp_path, deeppcb, kit):
    kit.put_sample(deeppcb, tmp_path, "00041000")
    kit.put_sample(deeppcb, tmp_path, "00041001", template=False)
    drop = load_drop(tmp_path)
    assert drop.format == "deeppcb"
    assert [s.sample_id for s in drop.samples] == ["00041000", "00041001"]
    assert {s.group for s in drop.samples} == {"group00041"}
    assert drop.samples[0].template_path and drop.samples[1].template_path is None
    assert drop.errors == ["", ""]


def test_voc_adapter(tmp_path, deeppcb, kit):
    test, _, _ = kit.real_files(deeppcb, "00041000")
    (tmp_path / "lineA").mkdir()
    shutil.copyfile(test, tmp_path / "lineA" / "board1.jpg")
    (tmp_path / "lineA" / "board1.xml").write_text(
        _voc_xml("board1.jpg", [("pinhole", 10, 20, 40, 50), ("mouse_bite", 100, 100, 130, 140),
                                ("scratch", 1, 1, 9, 9)]))
    (tmp_path / "lineA" / "broken.xml").write_text("<annotation><filename>broken.jpg</filename>")
    assert detect_format(tmp_path) == "voc"
    drop = load_drop(tmp_path)
    by_id = {s.sample_id: (s, e) for s, e in zip(drop.samples, drop.errors, strict=True)}
    s, err = by_id["board1"]
    assert err == "" and s.group == "lineA" and s.template_path is None
    assert [(b.x1, b.y1, b.x2, b.y2, b.cls) for b in s.boxes] == [
        (10, 20, 40, 50, "pin-hole"), (100, 100, 130, 140, "mousebite"), (1, 1, 9, 9, "scratch")]
    assert "does not parse" in by_id["broken"][1]


def test_coco_adapter(tmp_path, deeppcb, kit):
    test, _, _ = kit.real_files(deeppcb, "00041000")
    (tmp_path / "images").mkdir()
    shutil.copyfile(test, tmp_path / "images" / "b1.jpg")
    shutil.copyfile(test, tmp_path / "images" / "b2.jpg")
    coco = {"images": [{"id": 1, "file_name": "b1.jpg", "width": 640, "height": 640},
                       {"id": 2, "file_name": "b2.jpg", "width": 640, "height": 640}],
            "categories": [{"id": 1, "name": "spurious_copper"}, {"id": 2, "name": "pin_hole"},
                           {"id": 3, "name": "short"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 30, 40]},
                            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [100, 100, 5, 6]},
                            {"id": 3, "image_id": 2, "category_id": 3, "bbox": [0, 0, 10, 10]}]}
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    assert detect_format(tmp_path) == "coco"
    samples = {s.sample_id: s for s in read_drop(tmp_path)}
    assert set(samples) == {"b1", "b2"}
    assert samples["b1"].group == tmp_path.name  # images/ is a role folder, not a board group
    assert [(b.x1, b.y1, b.x2, b.y2, b.cls) for b in samples["b1"].boxes] == [
        (10, 20, 40, 60, "copper"), (100, 100, 105, 106, "pin-hole")]
    assert samples["b2"].template_path is None


def test_unknown_folder_is_a_clear_error(tmp_path):
    (tmp_path / "notes.md").write_text("hello")
    with pytest.raises(ValueError, match=str(tmp_path)):
        detect_format(tmp_path)


def test_materialise_bundled_drop(tmp_path, deeppcb):
    assert sorted(g for gs in BUNDLED_DROPS.values() for g in gs) == sorted(p.name for p in deeppcb.glob("group*"))
    dest = materialise_drop("2026-02", deeppcb, tmp_path / "drop")
    samples = read_drop(dest)
    assert len(samples) == 50 and {s.group for s in samples} == {"group44000"}
    assert all(s.template_path and s.boxes for s in samples)
    with pytest.raises(KeyError):
        materialise_drop("1999-01", deeppcb, tmp_path / "x")
