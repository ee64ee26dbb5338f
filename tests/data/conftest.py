"""Shared helpers for the data tests: real DeepPCB samples copied into tmp folders."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from components.config import Config


@pytest.fixture(scope="session")
def deeppcb(deeppcb_dir) -> Path:
    """The real DeepPCB folder (tests/conftest.py finds it or skips)."""
    return deeppcb_dir


def real_files(root: Path, sid: str) -> tuple[Path, Path, Path]:
    """(test, template, annotation) of a real DeepPCB sample id like '00041000'."""
    g = sid[:5]
    base = root / f"group{g}"
    return base / g / f"{sid}_test.jpg", base / g / f"{sid}_temp.jpg", base / f"{g}_not" / f"{sid}.txt"


def put_sample(root: Path, drop: Path, sid: str, group: str | None = None, new_id: str | None = None,
               template: bool = True, annotation: str | None = None) -> Path:
    """Copy a real sample into `drop` in DeepPCB layout (`<group>/<g>/..`, `<group>/<g>_not/..`).

    new_id renames it; annotation replaces the annotation text. Returns the copied test image.
    """
    test, temp, ann = real_files(root, sid)
    group = group or f"group{sid[:5]}"
    sid = new_id or sid
    img_dir, ann_dir = drop / group / group[-5:], drop / group / f"{group[-5:]}_not"
    img_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(test, img_dir / f"{sid}_test.jpg")
    if template:
        shutil.copyfile(temp, img_dir / f"{sid}_temp.jpg")
    if annotation is None:
        shutil.copyfile(ann, ann_dir / f"{sid}.txt")
    else:
        (ann_dir / f"{sid}.txt").write_text(annotation)
    return img_dir / f"{sid}_test.jpg"


def make_cfg(workdir: Path, line: dict | None = None, **data) -> Config:
    """The default config in workdir; `line` sets fields of its line section (sizes, reference),
    the rest fields of its data section. An unknown name is an error, not a silent no-op."""
    cfg = Config()
    cfg.paths.workdir = str(workdir)
    for section, values in ((cfg.line, line or {}), (cfg.data, data)):
        for k, v in values.items():
            if not hasattr(section, k):
                raise AttributeError(f"{type(section).__name__} has no field {k!r}")
            setattr(section, k, v)
    return cfg


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under folder with its bytes, to prove nothing changed."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def kit():
    """The helpers above as a fixture, so test modules need not import conftest by name."""
    from types import SimpleNamespace

    return SimpleNamespace(put_sample=put_sample, make_cfg=make_cfg, snapshot=snapshot, real_files=real_files)
