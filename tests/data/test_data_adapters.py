"""Drop adapters: DeepPCB, Pascal VOC and COCO folders read into Sample records."""
from __future__ import annotations

import json
import shutil

import pytest

from components.config import CLASSES
from components.data.adapters import detect_format, load_drop, normalise_class, parse_renames, read_drop
from components.data.drops import BUNDLED_DROPS, materialise_drop


def _voc_xml(filename: str, objects: list[tuple[str, int, int, int, int]]) -> str:
    objs = "".join(
        f"<object><name>{n}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin>"
        f"<xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>"
        for n, a, b, c, d in objects)
    size = "<size><width>640</width><height>640</height></size>"
    return f"<annotation><filename>{filename}</filename>{size}{objs}</annotation>"


def test_class_aliases():
    norm = lambda name: normalise_class(name, CLASSES)  # noqa: E731
    assert norm("pinhole") == norm("pin_hole") == norm("Pin-Hole") == "pin-hole"
    assert norm("spurious_copper") == "copper"
    assert norm("mouse_bite") == "mousebite"
    assert norm("scratch") == "scratch"  # kept as-is, quarantined later
    assert normalise_class("pinhole", ("pinhole", "scratch")) == "pinhole"  # another line's own class
    assert normalise_class("pin_hole", ("scratch",)) == "pin_hole"  # no alias onto a class the line lacks


def test_deeppcb_detected_and_read(tmp_path, deeppcb, kit):
    kit.put_sample(deeppcb, tmp_path, "00041000")
    kit.put_sample(deeppcb, tmp_path, "00041001", template=False)
    drop = load_drop(tmp_path, CLASSES)
    assert drop.format == "deeppcb"
    assert [s.sample_id for s in drop.samples] == ["00041000", "00041001"]
    assert {s.group for s in drop.samples} == {"group00041"}
    assert drop.samples[0].template_path and drop.samples[1].template_path is None
    assert drop.errors == ["", ""]


def test_deeppcb_types_index_the_given_vocabulary(tmp_path, deeppcb, kit):
    kit.put_sample(deeppcb, tmp_path, "00041000", annotation="10 10 50 50 1\n60 60 90 90 3\n")
    drop = load_drop(tmp_path, ("scratch", "pit"))
    assert [b.cls for b in drop.samples[0].boxes] == ["scratch", "unknown-type-3"]


def test_voc_adapter(tmp_path, deeppcb, kit):
    test, _, _ = kit.real_files(deeppcb, "00041000")
    (tmp_path / "lineA").mkdir()
    shutil.copyfile(test, tmp_path / "lineA" / "board1.jpg")
    (tmp_path / "lineA" / "board1.xml").write_text(
        _voc_xml("board1.jpg", [("pinhole", 10, 20, 40, 50), ("mouse_bite", 100, 100, 130, 140),
                                ("scratch", 1, 1, 9, 9)]))
    (tmp_path / "lineA" / "broken.xml").write_text("<annotation><filename>broken.jpg</filename>")
    assert detect_format(tmp_path) == "voc"
    drop = load_drop(tmp_path, CLASSES)
    by_id = {s.sample_id: (s, e) for s, e in zip(drop.samples, drop.errors, strict=True)}
    s, err = by_id["board1"]
    assert err == "" and s.group == "lineA" and s.template_path is None
    assert [(b.x1, b.y1, b.x2, b.y2, b.cls) for b in s.boxes] == [
        (10, 20, 40, 50, "pin-hole"), (100, 100, 130, 140, "mousebite"), (1, 1, 9, 9, "scratch")]
    assert "does not parse" in by_id["broken"][1]


STEEL = ("crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches")


def test_a_class_map_renames_a_drops_labels_onto_the_lines_classes(tmp_path, deeppcb, kit):
    test, _, _ = kit.real_files(deeppcb, "00041000")
    shutil.copyfile(test, tmp_path / "c1.jpg")
    (tmp_path / "c1.xml").write_text(_voc_xml("c1.jpg", [("Scratch", 1, 1, 9, 9), ("pits", 2, 2, 8, 8),
                                                          ("crazing", 3, 3, 7, 7), ("dent", 4, 4, 6, 6)]))
    renames = parse_renames(("Scratch=scratches", " pits = pitted_surface "), STEEL)
    (s,) = load_drop(tmp_path, STEEL, renames).samples
    assert [b.cls for b in s.boxes] == ["scratches", "pitted_surface", "crazing", "dent"]  # dent: quarantined later
    assert [b.cls for b in load_drop(tmp_path, STEEL).samples[0].boxes] == ["Scratch", "pits", "crazing", "dent"]
    with pytest.raises(ValueError, match=r"'Scratch' is not old=new"):
        parse_renames(("Scratch",), STEEL)
    with pytest.raises(ValueError, match=r"'scratch' is not a class of this line \(crazing, "):
        parse_renames(("Scratch=scratch",), STEEL)


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
    samples = {s.sample_id: s for s in read_drop(tmp_path, CLASSES)}
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
    samples = read_drop(dest, CLASSES)
    assert len(samples) == 50 and {s.group for s in samples} == {"group44000"}
    assert all(s.template_path and s.boxes for s in samples)
    with pytest.raises(KeyError):
        materialise_drop("1999-01", deeppcb, tmp_path / "x")


def test_non_finite_boxes_are_annotation_errors(tmp_path, deeppcb, kit):
    """NaN passes every bounds check of validation, so the adapters must refuse it (and inf) by file."""
    test, _, _ = kit.real_files(deeppcb, "00041000")
    voc, coco = tmp_path / "voc", tmp_path / "coco"
    voc.mkdir()
    shutil.copyfile(test, voc / "b1.jpg")
    (voc / "b1.xml").write_text(_voc_xml("b1.jpg", [("open", 10, 20, 40, 50)]).replace("<xmin>10<", "<xmin>nan<"))
    (coco / "images").mkdir(parents=True)
    shutil.copyfile(test, coco / "images" / "b1.jpg")
    (coco / "annotations.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "b1.jpg"}], "categories": [{"id": 1, "name": "open"}],
        "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [10, 20, float("inf"), 40]}]}))
    voc_drop, coco_drop = load_drop(voc, CLASSES), load_drop(coco, CLASSES)
    assert voc_drop.errors[0].startswith("annotation does not parse: b1.xml: <object> 'open': non-finite coordinate")
    assert coco_drop.errors[0].startswith("annotation does not parse: annotations.json: bad bbox")
    assert "annotation id 7: non-finite coordinate" in coco_drop.errors[0]
    assert voc_drop.samples[0].boxes == coco_drop.samples[0].boxes == []
