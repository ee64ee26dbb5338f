"""Read a drop folder in any supported format into Sample records.

Formats: DeepPCB layout (`<id>_test.jpg` / `<id>_temp.jpg` / `<id>.txt`), Pascal VOC
(one .xml per image) and COCO (one annotations .json). VOC and COCO carry no
defect-free template. Class names are mapped onto the vocabulary through
CLASS_ALIASES; unknown names are kept as-is so validation can quarantine them.

Annotation problems never raise here: they are collected in `Drop.errors` so that
validation can report them per sample instead of losing the whole drop.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from components.config import CLASSES
from components.data.records import Box, Sample, _annotation_for, parse_deeppcb_annotation, read_deeppcb

CLASS_ALIASES: dict[str, str] = {
    "pinhole": "pin-hole",
    "pin_hole": "pin-hole",
    "pin hole": "pin-hole",
    "spurious_copper": "copper",
    "spurious-copper": "copper",
    "spurious copper": "copper",
    "mouse_bite": "mousebite",
    "mouse-bite": "mousebite",
    "mouse bite": "mousebite",
}
# Folder names that describe a file's role, not a board group.
_ROLE_FOLDERS = {"annotations", "jpegimages", "images", "imgs", "labels", "xml"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


@dataclass
class Drop:
    """What a drop folder holds: its format, samples, and per-sample annotation errors ('' = fine)."""

    format: str
    samples: list[Sample]
    errors: list[str] = field(default_factory=list)


def normalise_class(name: str, classes: tuple[str, ...] = CLASSES) -> str:
    """Vocabulary name for a VOC/COCO label; unknown labels come back unchanged."""
    key = str(name).strip()
    if key.lower() in classes:
        return key.lower()
    return CLASS_ALIASES.get(key.lower(), key)


def detect_format(drop_dir: str | Path) -> str:
    """'deeppcb', 'voc' or 'coco'; ValueError naming the folder when none fits."""
    root = Path(drop_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: drop folder does not exist")
    if next(root.rglob("*_test.jpg"), None) is not None:
        return "deeppcb"
    if next(root.rglob("*.xml"), None) is not None:
        return "voc"
    if _coco_files(root):
        return "coco"
    raise ValueError(f"{root}: no DeepPCB '*_test.jpg', VOC '*.xml' or COCO annotations json found")


def load_drop(drop_dir: str | Path, classes: tuple[str, ...] = CLASSES) -> Drop:
    """Read a drop in whichever format it is in."""
    fmt = detect_format(drop_dir)
    reader = {"deeppcb": _load_deeppcb, "voc": _load_voc, "coco": _load_coco}[fmt]
    samples, errors = reader(Path(drop_dir), classes)
    return Drop(fmt, samples, errors)


def read_drop(drop_dir: str | Path, classes: tuple[str, ...] = CLASSES) -> list[Sample]:
    """Samples of a drop in any supported format (see load_drop for the errors too)."""
    return load_drop(drop_dir, classes).samples


def group_for(path: Path, root: Path) -> str:
    """First folder under the drop that is not a role folder (Annotations/...), else the drop name."""
    for part in path.relative_to(root).parts[:-1]:
        if part.lower() not in _ROLE_FOLDERS:
            return part
    return root.name


def _load_deeppcb(root: Path, classes: tuple[str, ...]) -> tuple[list[Sample], list[str]]:
    samples = read_deeppcb(root, classes, strict=False)
    return samples, [deeppcb_annotation_error(Path(s.test_path), classes) for s in samples]


def deeppcb_annotation_error(test_img: Path, classes: tuple[str, ...] = CLASSES) -> str:
    """'' when the DeepPCB annotation of test_img exists and parses, else why not."""
    ann = _annotation_for(test_img)
    if ann is None:
        return "annotation file missing"
    try:
        parse_deeppcb_annotation(ann, classes)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        # file name only: the message lands in the manifest, whose hash must not depend on where the drop was
        return f"annotation does not parse: {str(exc).replace(str(ann), ann.name)}"
    return ""


def _find_image(name: str, near: Path, root: Path) -> Path:
    """The image a VOC/COCO record names: next to its annotation, in a sibling image folder, or anywhere."""
    rel = Path(name)
    for base in (near, near.parent / "JPEGImages", near.parent / "images", near / "images", root):
        if (base / rel).is_file():
            return base / rel
    hit = next(root.rglob(rel.name), None)
    return hit if hit is not None else near / rel


def _voc_box(obj: ET.Element, classes: tuple[str, ...]) -> Box:
    bb = obj.find("bndbox")
    if bb is None:
        raise ValueError("<object> without <bndbox>")
    vals = [float(bb.findtext(k, "nan")) for k in ("xmin", "ymin", "xmax", "ymax")]
    if any(v != v for v in vals):  # NaN: a coordinate tag is missing
        raise ValueError("<bndbox> lacks one of xmin/ymin/xmax/ymax")
    return Box(*vals, cls=normalise_class(obj.findtext("name", ""), classes))


def _load_voc(root: Path, classes: tuple[str, ...]) -> tuple[list[Sample], list[str]]:
    samples, errors = [], []
    for xml in sorted(root.rglob("*.xml")):
        boxes: list[Box] = []
        image = xml.with_suffix(".jpg")
        try:
            tree = ET.parse(xml).getroot()
            image = _find_image(tree.findtext("filename") or image.name, xml.parent, root)
            boxes = [_voc_box(o, classes) for o in tree.iter("object")]
            err = ""
        except (ET.ParseError, ValueError) as exc:
            err = f"annotation does not parse: {xml.name}: {exc}"
        group = group_for(image if image.is_relative_to(root) else xml, root)
        samples.append(Sample(image.stem, group, str(image), None, boxes))
        errors.append(err)
    return samples, errors


def _coco_files(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (ValueError, OSError, UnicodeDecodeError):
            continue
        if isinstance(data, dict) and {"images", "annotations", "categories"} <= data.keys():
            found.append(path)
    return found


def _coco_boxes(anns: list[dict], names: dict, classes: tuple[str, ...]) -> list[Box]:
    boxes = []
    for a in anns:
        x, y, w, h = (float(v) for v in a["bbox"])
        name = names.get(a["category_id"], str(a["category_id"]))
        boxes.append(Box(x, y, x + w, y + h, normalise_class(name, classes)))
    return boxes


def _load_coco(root: Path, classes: tuple[str, ...]) -> tuple[list[Sample], list[str]]:
    samples, errors = [], []
    for path in _coco_files(root):
        data = json.loads(path.read_text())
        names = {c["id"]: c["name"] for c in data["categories"]}
        by_image: dict = {}
        for a in data["annotations"]:
            by_image.setdefault(a.get("image_id"), []).append(a)
        for img in data["images"]:
            image = _find_image(img["file_name"], path.parent, root)
            group = group_for(image if image.is_relative_to(root) else path, root)
            sample = Sample(image.stem, group, str(image), None)
            err = ""
            try:
                sample.boxes = _coco_boxes(by_image.get(img.get("id"), []), names, classes)
            except (KeyError, TypeError, ValueError) as exc:
                err = f"annotation does not parse: {path.name}: bad bbox ({exc!r})"
            samples.append(sample)
            errors.append(err)
    return samples, errors
