"""Ingest a drop folder: normalise it to DeepPCB layout under `<data>/drops/<month>/`, DVC-track it.

Normalised layout (paths in the manifest are relative to the month folder, so the
DVC hash depends on content only, never on where the workdir lives):
    <group>/<id>_test.jpg   <group>/<id>_temp.jpg (if any)   <group>/<id>.txt
    manifest.csv            Sample.to_row() + `format` + `annotation_error`
Bad content is copied as-is; judging it is validation's job. Ingest only refuses
what it cannot store: an empty or unreadable drop, or a month that already holds
different content. A file it may not read (a symbolic link, or outside the drop:
adapters.Guard) is never copied; its row carries the refusal for validation to quarantine.
"""
from __future__ import annotations

import csv
import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from components.config import Config
from components.data import versioning
from components.data.adapters import Drop, Guard, load_configured
from components.data.records import Box, Sample, _annotation_for

MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = ["sample_id", "group", "test_path", "template_path", "boxes", "month", "format", "annotation_error"]
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_JPEG = (".jpg", ".jpeg")


class DropError(ValueError):
    """A drop that cannot be taken in at all; the message names the folder or month."""


class EmptyDrop(DropError):
    """The drop folder holds no samples."""


class DropConflict(DropError):
    """The month was already ingested with different content."""


@dataclass
class IngestResult:
    month: str
    drop_hash: str
    n_samples: int
    path: str
    format: str = "deeppcb"
    created: bool = True
    """False when the identical drop had been ingested before (a no-op)."""


def check_month(month: str) -> str:
    """Month labels become folder names: refuse anything that could escape the data area."""
    if not _SAFE.match(month or ""):
        raise DropError(f"bad month label {month!r}: use letters, digits, '.', '_' or '-', e.g. 2026-01")
    return month


def drops_root(cfg: Config) -> Path:
    return cfg.paths.data_dir / "drops"


def drop_path(cfg: Config, month: str) -> Path:
    return drops_root(cfg) / check_month(month)


def ingest(drop_dir: str | Path, month: str, cfg: Config) -> IngestResult:
    """Copy a drop (any adapter format) into the data area and DVC-add + push it."""
    check_month(month)
    drop = _read(Path(drop_dir), cfg)
    repo = versioning.ensure_data_repo(cfg)
    dest = drop_path(cfg, month)
    staging = cfg.paths.data_dir / ".staging" / f"drop-{month}"
    _rmtree(staging)
    write_normalised(drop, month, staging, cfg.data.classes)
    if dest.exists():
        return _existing(repo, dest, staging, drop, month)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(dest)
    digest = versioning.add_and_push(repo, dest)
    return IngestResult(month, digest, len(drop.samples), str(dest), drop.format, True)


def _read(drop_dir: Path, cfg: Config) -> Drop:
    if not drop_dir.is_dir():
        raise DropError(f"drop folder {drop_dir} does not exist")
    if not any(p.is_file() for p in drop_dir.rglob("*")):
        raise EmptyDrop(f"drop folder {drop_dir} is empty")
    try:
        drop = load_configured(drop_dir, cfg.data.classes, cfg.data.class_map)
    except ValueError as exc:
        raise DropError(f"drop folder {drop_dir}: {exc}") from exc
    if not drop.samples:
        raise EmptyDrop(f"drop folder {drop_dir} holds no samples")
    return drop


def _existing(repo: Path, dest: Path, staging: Path, drop: Drop, month: str) -> IngestResult:
    """Same content: a no-op returning the recorded hash. Different content: refuse, touch nothing."""
    same = tree_digest(dest) == tree_digest(staging)
    _rmtree(staging)
    if not same:
        raise DropConflict(f"month {month} was already ingested at {dest} with different content; "
                           "refusing to overwrite (ingest the new drop under a new month label)")
    digest = versioning.tracked_hash(repo, dest) or versioning.add(repo, dest)
    versioning.push(repo, dest)  # a retry after a failed push must still reach the remote
    return IngestResult(month, digest, len(drop.samples), str(dest), drop.format, False)


def write_normalised(drop: Drop, month: str, dest: Path, classes: tuple[str, ...]) -> Path:
    """Write drop into dest in DeepPCB layout with manifest.csv; returns the manifest path."""
    dest.mkdir(parents=True)
    guard = Guard(drop.root)
    rows = [_write_sample(s, err, drop.format, month, dest, classes, guard)
            for s, err in zip(drop.samples, drop.errors, strict=True)]
    rows.sort(key=lambda r: (r["group"], r["sample_id"], r["test_path"]))
    return write_manifest(rows, dest / MANIFEST)


def write_manifest(rows: list[dict], path: Path) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _slot(dest: Path, group: str, sid: str) -> Path:
    """Folder for a sample; a second sample with the same id in a group gets `_dup<k>/` so nothing is lost."""
    folder, k = dest / group, 1
    while (folder / f"{sid}_test.jpg").exists() or (folder / f"{sid}.txt").exists():
        folder, k = dest / group / f"_dup{k}", k + 1
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _write_sample(s: Sample, err: str, fmt: str, month: str, dest: Path, classes: tuple[str, ...],
                  guard: Guard) -> dict:
    group = s.group if _SAFE.match(s.group) else re.sub(r"[^A-Za-z0-9._-]", "_", s.group).lstrip("._-") or "drop"
    folder = _slot(dest, group, s.sample_id)
    test = folder / f"{s.sample_id}_test.jpg"
    _copy_image(Path(s.test_path), test, guard)
    temp = folder / f"{s.sample_id}_temp.jpg"
    if not (s.template_path and _copy_image(Path(s.template_path), temp, guard)):
        temp = None
    _write_annotation(s, fmt, folder / f"{s.sample_id}.txt", classes, guard)
    rel = lambda p: p.relative_to(dest).as_posix()  # noqa: E731
    out = Sample(s.sample_id, group, rel(test), rel(temp) if temp else None, s.boxes, month)
    return {**out.to_row(), "format": fmt, "annotation_error": err}


def _copy_image(src: Path, dst: Path, guard: Guard) -> bool:
    """JPEGs byte for byte; other decodable formats re-encoded as JPEG; the rest raw, for validation to judge.

    False (nothing copied) for a missing or refused file: it is recorded in the manifest all
    the same, and validation reports it (the adapter already put the refusal in the row).
    """
    if guard.refusal(src) or not src.is_file():
        return False
    if src.suffix.lower() not in _JPEG:
        try:
            from PIL import Image

            with Image.open(src) as im:
                im.convert("RGB" if im.mode not in ("L", "RGB") else im.mode).save(dst, "JPEG", quality=95)
            return True
        except (OSError, ValueError, SyntaxError):
            pass
    shutil.copyfile(src, dst)
    return True


def _write_annotation(s: Sample, fmt: str, dst: Path, classes: tuple[str, ...], guard: Guard) -> None:
    """DeepPCB: the original file verbatim (so validation can re-parse it); VOC/COCO: written from the boxes."""
    if fmt == "deeppcb":
        ann = _annotation_for(Path(s.test_path))
        if ann is not None and not guard.refusal(ann):
            shutil.copyfile(ann, dst)
        return
    dst.write_text("".join(_deeppcb_line(b, classes) for b in s.boxes))


def _deeppcb_line(b: Box, classes: tuple[str, ...]) -> str:
    # type 0 stands for a class outside the vocabulary; its name stays in the manifest
    kind = classes.index(b.cls) + 1 if b.cls in classes else 0
    return f"{_num(b.x1)} {_num(b.y1)} {_num(b.x2)} {_num(b.y2)} {kind}\n"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def tree_digest(root: Path) -> str:
    """md5 over every file's relative path and content, to compare two folders."""
    h = hashlib.md5()
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.md5(path.read_bytes()).hexdigest().encode())
    return h.hexdigest()


def read_manifest(month_dir: Path) -> list[dict]:
    """Rows of a month folder's manifest.csv, all values as strings."""
    with open(Path(month_dir) / MANIFEST, newline="") as fh:
        return list(csv.DictReader(fh))


def _rmtree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
