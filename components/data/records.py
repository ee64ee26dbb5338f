"""The sample record every stage passes around, and the DeepPCB folder reader.

Boxes are always in original image pixels (x1, y1, x2, y2, top-left / bottom-right
corners); the only conversion to the model's frame lives in components/model/fuse.py.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from components.config import CLASSES


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


def parse_deeppcb_annotation(path: Path, classes: tuple[str, ...] = CLASSES) -> list[Box]:
    """Read `x1 y1 x2 y2 type` lines (spaces or commas); type is 1-based into classes.

    Raises ValueError naming the file and line on anything malformed.
    """
    boxes = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.replace(",", " ").split()
        if not parts:
            continue
        if len(parts) != 5:
            raise ValueError(f"{path}:{lineno}: expected 'x1 y1 x2 y2 type', got {line!r}")
        try:
            x1, y1, x2, y2 = (float(v) for v in parts[:4])
            kind = int(parts[4])
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: non-numeric field in {line!r}") from exc
        cls = classes[kind - 1] if 1 <= kind <= len(classes) else f"unknown-type-{kind}"
        boxes.append(Box(x1, y1, x2, y2, cls))
    return boxes


def _annotation_for(test_img: Path) -> Path | None:
    sid = test_img.name[: -len("_test.jpg")]
    for cand in (test_img.parent.parent / f"{test_img.parent.name}_not" / f"{sid}.txt", test_img.parent / f"{sid}.txt"):
        if cand.exists():
            return cand
    return None


def _group_of(test_img: Path, root: Path) -> str:
    rel = test_img.relative_to(root).parts
    return rel[0] if len(rel) > 1 else root.name


def read_deeppcb(root: str | Path, classes: tuple[str, ...] = CLASSES, strict: bool = True) -> list[Sample]:
    """Every `<id>_test.jpg` under root, with its `<id>_temp.jpg` and boxes if present.

    Works with or without `trainval.txt`; the group is the first folder under root.
    With strict=False, a malformed annotation yields a sample with no boxes and
    the error is left for validation to report (see components/data/validate.py).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    samples = []
    for test_img in sorted(root.rglob("*_test.jpg")):
        sid = test_img.name[: -len("_test.jpg")]
        temp = test_img.with_name(f"{sid}_temp.jpg")
        ann = _annotation_for(test_img)
        boxes: list[Box] = []
        if ann is not None:
            try:
                boxes = parse_deeppcb_annotation(ann, classes)
            except ValueError:
                if strict:
                    raise
        samples.append(Sample(sid, _group_of(test_img, root), str(test_img), str(temp) if temp.exists() else None, boxes))
    return samples
