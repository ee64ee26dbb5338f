"""Read a drop folder in any supported format into Sample records.

Formats: DeepPCB layout (`<id>_test.jpg` / `<id>_temp.jpg` / `<id>.txt`), Pascal VOC
(one .xml per image) and COCO (one annotations .json). VOC and COCO carry no
defect-free template. Class names are mapped onto the vocabulary through the user's
renames (`data.class_map`, `--map old=new`), then CLASS_ALIASES; unknown names are kept as-is
so validation can quarantine them.

Annotation problems never raise here: they are collected in `Drop.errors` so that
validation can report them per sample instead of losing the whole drop. The same holds
for files the drop may not make us read (`Guard`): a symbolic link, a file under a linked
folder, or a name that resolves outside the drop folder is refused by name, unread, and
its sample quarantined; a link no sample claims (a linked folder, say) gets a row of its own.
"""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from components.data.records import Box, Sample, _annotation_for, _group_of, finite, parse_deeppcb_annotation, template_for

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
NameOf = Callable[[str], str]
"""A VOC/COCO label -> the name a box gets (normalise_class with the line's classes and renames)."""
# Folder names that describe a file's role, not a board group.
_ROLE_FOLDERS = {"annotations", "jpegimages", "images", "imgs", "labels", "xml"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


@dataclass
class Drop:
    """What a drop folder holds: its format, folder, samples, and per-sample errors ('' = fine)."""

    format: str
    root: Path
    samples: list[Sample]
    errors: list[str] = field(default_factory=list)


class Guard:
    """Which files of a drop may be read: inside the drop folder, with no symbolic link on the way.

    A drop is untrusted input: a link, or a name like ../../etc/passwd in an annotation, would
    make ingest copy any readable file of the machine into the versioned data area. Deciding
    takes only lstat/readlink, never a byte of the file. The drop folder itself may be a link.
    Every link it refused is kept in `blamed` (relative paths), so the others can be reported.
    """

    def __init__(self, root: Path):
        self.root, self.real_root = Path(os.path.abspath(root)), Path(os.path.realpath(root))
        self.blamed: set[str] = set()

    def refusal(self, *paths: Path | None) -> str:
        """'' when every given path (None = absent) may be read, else why the first refused one is not."""
        for path in paths:
            why = self._why(Path(path)) if path is not None else ""
            if why:
                return why
        return ""

    def _why(self, path: Path) -> str:
        lexical = Path(os.path.abspath(path))
        if not lexical.is_relative_to(self.root):
            return f"refused, not read: {path.name} lies outside the drop folder"  # name only: the manifest is hashed
        rel = lexical.relative_to(self.root)
        steps = [Path(*rel.parts[:k]) for k in range(1, len(rel.parts) + 1)]
        link = next((p for p in steps if (self.root / p).is_symlink()), None)
        if link is not None:
            self.blamed.add(link.as_posix())
            where = "is a symbolic link" if link == rel else f"lies under the symbolic link {link.as_posix()}"
            return f"refused, not read: {rel.as_posix()} {where}"
        if Path(os.path.realpath(path)) != self.real_root / rel:  # '..' through a link
            return f"refused, not read: {rel.as_posix()} resolves outside the drop folder"
        return ""


def symlinks_under(root: Path) -> list[Path]:
    """Every symbolic link under root, relative; a linked folder is listed, never entered."""
    found = []
    for folder, dirs, files in os.walk(root):  # os.walk does not follow links by default
        found += [Path(folder, n).relative_to(root) for n in dirs + files if Path(folder, n).is_symlink()]
    return sorted(found)


def parse_renames(pairs: tuple[str, ...] | list[str], classes: tuple[str, ...]) -> dict[str, str]:
    """`old=new` pairs (data.class_map) as {old label, lower case: new class}; ValueError naming the
    pair when it is not old=new or new is not one of the classes."""
    renames = {}
    for pair in pairs:
        old, sep, new = (part.strip() for part in str(pair).partition("="))
        if not sep or not old or not new:
            raise ValueError(f"data.class_map: {pair!r} is not old=new (e.g. Scratch=scratches)")
        if new not in classes:
            raise ValueError(f"data.class_map: {pair!r}: {new!r} is not a class of this line ({', '.join(classes)})")
        renames[old.lower()] = new
    return renames


def normalise_class(name: str, classes: tuple[str, ...], renames: dict[str, str] | None = None) -> str:
    """Vocabulary name for a VOC/COCO label: the user's rename (parse_renames) first, then the
    class itself, then an alias; unknown labels come back unchanged.

    An alias only applies when its target is in the configured vocabulary: another
    product line may use 'pinhole' as a class name of its own.
    """
    key = str(name).strip()
    if renames and key.lower() in renames:
        return renames[key.lower()]
    if key.lower() in classes:
        return key.lower()
    alias = CLASS_ALIASES.get(key.lower())
    return alias if alias in classes else key


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


def load_drop(drop_dir: str | Path, classes: tuple[str, ...], renames: dict[str, str] | None = None) -> Drop:
    """Read a drop in whichever format it is in; refused files become per-sample errors.
    renames: parse_renames of the user's class map (VOC/COCO labels; DeepPCB's are type numbers)."""
    root = Path(drop_dir)
    fmt, guard = detect_format(root), Guard(root)
    if fmt == "deeppcb":
        samples, errors = _load_deeppcb(root, classes, guard)
    else:
        def name_of(label: str) -> str:
            return normalise_class(label, classes, renames)

        samples, errors = {"voc": _load_voc, "coco": _load_coco}[fmt](root, name_of, guard)
    for link in symlinks_under(root):
        if link.as_posix() not in guard.blamed:  # claimed by no sample: still refused by name
            samples.append(Sample(link.name, group_for(root / link, root), str(root / link), None))
            errors.append(guard.refusal(root / link))
    return Drop(fmt, root, samples, errors)


def load_configured(drop_dir: str | Path, classes: tuple[str, ...], class_map: tuple[str, ...]) -> Drop:
    """load_drop with the line's classes and the user's renames (data.classes, data.class_map):
    how ingest and evaluation both read a drop."""
    return load_drop(drop_dir, classes, parse_renames(class_map, classes))


def read_drop(drop_dir: str | Path, classes: tuple[str, ...]) -> list[Sample]:
    """Samples of a drop in any supported format (see load_drop for the errors too)."""
    return load_drop(drop_dir, classes).samples


def group_for(path: Path, root: Path) -> str:
    """First folder under the drop that is not a role folder (Annotations/...), else the drop name."""
    for part in path.relative_to(root).parts[:-1]:
        if part.lower() not in _ROLE_FOLDERS:
            return part
    return root.name


def _record_group(image: Path, annotation: Path, root: Path) -> str:
    """The group of a VOC/COCO record: from its image's folder, or its annotation's if the image is elsewhere."""
    img, base = Path(os.path.normpath(image)), Path(os.path.normpath(root))  # so '..' counts as elsewhere
    return group_for(img, base) if img.is_relative_to(base) else group_for(annotation, root)


def _load_deeppcb(root: Path, classes: tuple[str, ...], guard: Guard) -> tuple[list[Sample], list[str]]:
    pairs = [_deeppcb_sample(test, root, classes, guard) for test in sorted(root.rglob("*_test.jpg"))]
    return [s for s, _ in pairs], [e for _, e in pairs]


def _deeppcb_sample(test: Path, root: Path, classes: tuple[str, ...], guard: Guard) -> tuple[Sample, str]:
    """One DeepPCB sample and its error; nothing of it is read when one of its files is refused."""
    temp, ann = template_for(test), _annotation_for(test)
    sample = Sample(test.name[: -len("_test.jpg")], _group_of(test, root), str(test), str(temp) if temp else None)
    refused = guard.refusal(test, temp, ann)
    if refused or ann is None:
        return sample, refused or "annotation file missing"
    try:
        sample.boxes = parse_deeppcb_annotation(ann, classes)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        return sample, _parse_error(exc, ann)
    return sample, ""


def deeppcb_annotation_error(test_img: Path, classes: tuple[str, ...]) -> str:
    """'' when the DeepPCB annotation of test_img exists and parses, else why not."""
    ann = _annotation_for(test_img)
    if ann is None:
        return "annotation file missing"
    try:
        parse_deeppcb_annotation(ann, classes)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        return _parse_error(exc, ann)
    return ""


def _parse_error(exc: Exception, ann: Path) -> str:
    # file name only: the message lands in the manifest, whose hash must not depend on where the drop was
    return f"annotation does not parse: {str(exc).replace(str(ann), ann.name)}"


def _find_image(name: str, near: Path, root: Path) -> Path:
    """The image a VOC/COCO record names: next to its annotation, in a sibling image folder, or anywhere."""
    rel = Path(name)
    for base in (near, near.parent / "JPEGImages", near.parent / "images", near / "images", root):
        if (base / rel).is_file():
            return base / rel
    hit = next(root.rglob(rel.name), None)
    return hit if hit is not None else near / rel


def _voc_box(obj: ET.Element, name_of: NameOf) -> Box:
    bb = obj.find("bndbox")
    if bb is None:
        raise ValueError("<object> without <bndbox>")
    texts = [bb.findtext(k) for k in ("xmin", "ymin", "xmax", "ymax")]
    if None in texts:
        raise ValueError("<bndbox> lacks one of xmin/ymin/xmax/ymax")
    vals = finite([float(v) for v in texts], f"<object> {obj.findtext('name', '')!r}")
    return Box(*vals, cls=name_of(obj.findtext("name", "")))


def _load_voc(root: Path, name_of: NameOf, guard: Guard) -> tuple[list[Sample], list[str]]:
    pairs = [_voc_sample(xml, root, name_of, guard) for xml in sorted(root.rglob("*.xml"))]
    return [s for s, _ in pairs], [e for _, e in pairs]


def _voc_sample(xml: Path, root: Path, name_of: NameOf, guard: Guard) -> tuple[Sample, str]:
    """One VOC sample and its error; a refused annotation is not parsed, a refused image not claimed as fine."""
    image, boxes = xml.with_suffix(".jpg"), []
    err = guard.refusal(xml)
    if not err:
        try:
            tree = ET.parse(xml).getroot()
            image = _find_image(tree.findtext("filename") or image.name, xml.parent, root)
            boxes = [_voc_box(o, name_of) for o in tree.iter("object")]
            err = guard.refusal(image)
        except (ET.ParseError, ValueError) as exc:
            err = f"annotation does not parse: {xml.name}: {exc}"
    return Sample(image.stem, _record_group(image, xml, root), str(image), None, [] if err else boxes), err


def _coco_files(root: Path) -> list[Path]:
    guard = Guard(root)  # a linked json is never opened; load_drop reports it by name
    found = []
    for path in sorted(root.rglob("*.json")):
        if guard.refusal(path):
            continue
        try:
            data = json.loads(path.read_text())
        except (ValueError, OSError, UnicodeDecodeError):
            continue
        if isinstance(data, dict) and {"images", "annotations", "categories"} <= data.keys():
            found.append(path)
    return found


def _coco_boxes(anns: list[dict], names: dict, name_of: NameOf) -> list[Box]:
    boxes = []
    for a in anns:
        x, y, w, h = finite([float(v) for v in a["bbox"]], f"annotation id {a.get('id')}")
        name = names.get(a["category_id"], str(a["category_id"]))
        boxes.append(Box(x, y, x + w, y + h, name_of(name)))
    return boxes


def _load_coco(root: Path, name_of: NameOf, guard: Guard) -> tuple[list[Sample], list[str]]:
    samples, errors = [], []
    for path in _coco_files(root):
        data = json.loads(path.read_text())
        names = {c["id"]: c["name"] for c in data["categories"]}
        by_image: dict = {}
        for a in data["annotations"]:
            by_image.setdefault(a.get("image_id"), []).append(a)
        for img in data["images"]:
            image = _find_image(img["file_name"], path.parent, root)
            sample = Sample(image.stem, _record_group(image, path, root), str(image), None)
            err = guard.refusal(image)
            try:
                sample.boxes = [] if err else _coco_boxes(by_image.get(img.get("id"), []), names, name_of)
            except (KeyError, TypeError, ValueError) as exc:
                err = f"annotation does not parse: {path.name}: bad bbox ({exc!r})"
            samples.append(sample)
            errors.append(err)
    return samples, errors
