"""The sample record every stage passes around, and the DeepPCB folder reader.

Boxes are always in original image pixels (x1, y1, x2, y2, top-left / bottom-right
corners); the only conversion to the model's frame lives in components/model/fuse.py.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Box:
    x1: float
    y1: float
    x2: float
    y2: float
    cls: str

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2)


@dataclass
class Sample:
    sample_id: str
    group: str
    test_path: str
    template_path: str | None
    boxes: list[Box] = field(default_factory=list)
    month: str = ""

    def to_row(self) -> dict:
        row = asdict(self)
        row["boxes"] = json.dumps([[b.x1, b.y1, b.x2, b.y2, b.cls] for b in self.boxes])
        row["template_path"] = self.template_path or ""
        return row

    @classmethod
    def from_row(cls, row: dict) -> Sample:
        boxes = [Box(*b[:4], cls=b[4]) for b in json.loads(row["boxes"])]
        return cls(
            sample_id=str(row["sample_id"]),
            group=str(row["group"]),
            test_path=str(row["test_path"]),
            template_path=str(row["template_path"]) or None,
            boxes=boxes,
            month=str(row.get("month", "") or ""),
        )


def finite(values: list[float], where: str) -> list[float]:
    """values unchanged; ValueError naming `where` if one is NaN or infinite.

    NaN compares false with everything, so a NaN coordinate would pass every bounds check
    of validation; refusing it where boxes are parsed makes it an annotation error instead.
    """
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{where}: non-finite coordinate in {values}")
    return values


def parse_deeppcb_annotation(path: Path, classes: tuple[str, ...]) -> list[Box]:
    """Read `x1 y1 x2 y2 type` lines (spaces or commas); type is 1-based into classes.

    Raises ValueError naming the file and line on anything malformed, NaN or inf included.
    """
    boxes = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.replace(",", " ").split()
        if not parts:
            continue
        if len(parts) != 5:
            raise ValueError(f"{path}:{lineno}: expected 'x1 y1 x2 y2 type', got {line!r}")
        try:
            coords = [float(v) for v in parts[:4]]
            kind = int(parts[4])
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: non-numeric field in {line!r}") from exc
        x1, y1, x2, y2 = finite(coords, f"{path}:{lineno}")
        cls = classes[kind - 1] if 1 <= kind <= len(classes) else f"unknown-type-{kind}"
        boxes.append(Box(x1, y1, x2, y2, cls))
    return boxes


def _annotation_for(test_img: Path) -> Path | None:
    """The annotation of a `<id>_test.jpg`: in the sibling `<folder>_not/`, else beside it.

    A symbolic link counts as found even when broken, so the drop adapter refuses it by name.
    """
    if not test_img.name.endswith("_test.jpg"):
        return None
    sid = test_img.name[: -len("_test.jpg")]
    for cand in (test_img.parent.parent / f"{test_img.parent.name}_not" / f"{sid}.txt", test_img.parent / f"{sid}.txt"):
        if cand.exists() or cand.is_symlink():
            return cand
    return None


def template_for(test_img: Path) -> Path | None:
    """`<id>_temp.jpg` beside `<id>_test.jpg`, if there (a symbolic link counts, see _annotation_for)."""
    temp = test_img.with_name(test_img.name[: -len("_test.jpg")] + "_temp.jpg")
    return temp if temp.exists() or temp.is_symlink() else None


def _group_of(test_img: Path, root: Path) -> str:
    rel = test_img.relative_to(root).parts
    return rel[0] if len(rel) > 1 else root.name


def read_deeppcb(root: str | Path, classes: tuple[str, ...]) -> list[Sample]:
    """Every `<id>_test.jpg` under root, with its `<id>_temp.jpg` and boxes if present.

    Works with or without `trainval.txt`; the group is the first folder under root.
    Raises ValueError on a malformed annotation. It follows symbolic links, so it is for
    folders you trust (the bundled data, an evaluation set); a drop is read by
    adapters.load_drop, which refuses links and reports bad annotations per sample.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    samples = []
    for test_img in sorted(root.rglob("*_test.jpg")):
        temp, ann = template_for(test_img), _annotation_for(test_img)
        boxes = parse_deeppcb_annotation(ann, classes) if ann is not None else []
        samples.append(Sample(test_img.name[: -len("_test.jpg")], _group_of(test_img, root), str(test_img),
                              str(temp) if temp else None, boxes))
    return samples
