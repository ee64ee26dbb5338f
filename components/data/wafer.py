"""Wafer bin-map drops (the wafer line, WM-811K's layout): read, check, split into months.

Two drop formats:
- `.npz` in the shared layout: `maps` (every map flattened and concatenated, uint8), `offsets`
  (map i is maps[offsets[i]:offsets[i + 1]]), `shapes` (N x 2: rows, cols), `labels` (N strings),
  optionally `ids` (N strings; default the map's index);
- a folder of map images (PNG, three grey levels) with `labels.csv` (`file,label`), as a user
  exports them; a file outside the folder or behind a symbolic link is refused unread.

Values: 0 outside the wafer, 128 a passing die, 255 a failing die. `check` gives the reasons a
map cannot be accepted (the GX suite judges the same facts, `facts_frame`).
"""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from components.data.adapters import Guard
from components.data.split import group_hash_share

OUTSIDE, PASS, FAIL = 0, 128, 255
VALUES = (OUTSIDE, PASS, FAIL)
NPZ_ARRAYS = ("maps", "offsets", "shapes", "labels")
LABELS_CSV = "labels.csv"


@dataclasses.dataclass
class WaferMap:
    map_id: str
    grid: np.ndarray
    """(rows, cols) uint8 of VALUES (a bad map may hold others: `check` says so)."""
    label: str
    source: str
    """Where it came from: `<file>.npz[index]` or the image's path in the drop."""


def read_npz(path: str | Path) -> list[WaferMap]:
    """Every map of an .npz drop; ValueError naming the file and the array that is wrong."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npz ({exc})") from exc
    missing = [k for k in NPZ_ARRAYS if k not in data.files]
    if missing:
        raise ValueError(f"{path}: missing array(s) {', '.join(missing)} (an .npz drop has {', '.join(NPZ_ARRAYS)})")
    maps, offsets, shapes, labels = (data[k] for k in NPZ_ARRAYS)
    n = len(labels)
    if len(offsets) != n + 1 or shapes.shape != (n, 2):
        raise ValueError(f"{path}: {n} labels need {n + 1} offsets and {n} x 2 shapes, got {len(offsets)} and "
                         f"{'x'.join(map(str, shapes.shape))}")
    if offsets[0] != 0 or offsets[-1] != len(maps) or np.any(np.diff(offsets) < 0):
        raise ValueError(f"{path}: offsets must rise from 0 to len(maps) ({len(maps)})")
    ids = [str(i) for i in data["ids"]] if "ids" in data.files else [str(i) for i in range(n)]
    out = []
    for i in range(n):
        flat, (rows, cols) = maps[offsets[i]:offsets[i + 1]], (int(shapes[i, 0]), int(shapes[i, 1]))
        if rows * cols != len(flat):
            raise ValueError(f"{path}: map {i} has {len(flat)} values, its shape says {rows} x {cols}")
        out.append(WaferMap(ids[i], flat.reshape(rows, cols), str(labels[i]), f"{path.name}[{i}]"))
    return out


def read_png_folder(folder: str | Path) -> tuple[list[WaferMap], list[tuple[str, str]]]:
    """The maps of an image folder and its labels.csv, and (file, reason) for each row that could
    not be read (refused, missing, not an image)."""
    folder = Path(folder)
    table = folder / LABELS_CSV
    if not table.is_file():
        raise ValueError(f"{folder}: no {LABELS_CSV} (columns file,label) beside the map images")
    guard, maps, bad = Guard(folder), [], []
    with table.open(newline="") as f:
        reader = csv.DictReader(f)
        if not {"file", "label"} <= set(reader.fieldnames or []):
            raise ValueError(f"{table}: needs columns file,label, has {','.join(reader.fieldnames or [])}")
        for line, row in enumerate(reader, start=2):
            name, path = row["file"], folder / row["file"]
            why = guard.refusal(path) or ("" if path.is_file() else f"{LABELS_CSV} line {line}: no such file")
            if why:
                bad.append((name, why))
                continue
            try:
                grid = read_map_image(path)
            except OSError as exc:
                bad.append((name, f"not an image ({exc})"))
                continue
            maps.append(WaferMap(Path(name).stem, grid, row["label"].strip(), name))
    return maps, bad


def map_grid(im: Image.Image) -> np.ndarray:
    """The grid of a bin map image (PNG, three grey levels): its grey values as uint8 rows x cols.
    Not checked: `check` (a drop) and `model/wafer_inspector.check_grid` (a question) say what is wrong."""
    return np.asarray(im.convert("L"), dtype=np.uint8)


def read_map_image(path: str | Path) -> np.ndarray:
    """The grid of a bin map image file (`map_grid`); OSError when it is not an image."""
    with Image.open(path) as im:
        return map_grid(im)


def write_png(m: WaferMap, path: str | Path) -> None:
    """A map as the three-grey-level PNG users exchange."""
    Image.fromarray(m.grid.astype(np.uint8), mode="L").save(path)


def facts(m: WaferMap) -> dict:
    """What the checks judge, per map."""
    values = set(np.unique(m.grid).tolist())
    return {"map_id": m.map_id, "source": m.source, "label": m.label, "rows": int(m.grid.shape[0]),
            "cols": int(m.grid.shape[1]), "other_values": sorted(values - set(VALUES)),
            "dies": int((m.grid > OUTSIDE).sum())}


def facts_frame(maps: list[WaferMap]) -> pd.DataFrame:
    return pd.DataFrame([facts(m) for m in maps])


def check(maps: list[WaferMap], labels: tuple[str, ...], min_side: int, max_side: int) -> dict[int, list[str]]:
    """Per map index, why it cannot be accepted (absent: it can): values other than 0/128/255, a
    side outside [min_side, max_side], a label outside the vocabulary, no die, a repeated id."""
    seen: dict[str, int] = {}
    reasons: dict[int, list[str]] = {}
    for i, row in enumerate(facts(m) for m in maps):
        why = []
        if row["other_values"]:
            why.append(f"values other than 0/128/255: {row['other_values'][:5]}")
        if not (min_side <= row["rows"] <= max_side and min_side <= row["cols"] <= max_side):
            why.append(f"shape {row['rows']} x {row['cols']} outside {min_side}..{max_side} per side")
        if row["label"] not in labels:
            why.append(f"label {row['label']!r} is not one of {', '.join(labels)}")
        if not row["dies"]:
            why.append("no die on the wafer (every value 0)")
        if row["map_id"] in seen:
            why.append(f"id {row['map_id']} repeats map {seen[row['map_id']]}")
        seen.setdefault(row["map_id"], i)
        if why:
            reasons[i] = why
    return reasons


def month_of(map_id: str, months: list[str]) -> str:
    """The bundled month a map of the train part replays in: a stable hash of its id, so the
    monthly drops are the same on every machine."""
    share = group_hash_share(map_id)
    return months[min(int(share * len(months)), len(months) - 1)]
