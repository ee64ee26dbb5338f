"""The bundled DeepPCB data replayed as monthly drops, one set of board groups per month."""
from __future__ import annotations

import shutil
from pathlib import Path

BUNDLED_DROPS: dict[str, list[str]] = {
    "2026-01": ["group00041", "group13000", "group20085", "group77000", "group92000"],
    "2026-02": ["group44000"],
    "2026-03": ["group50600"],
}


def months() -> list[str]:
    """Bundled months in replay order."""
    return sorted(BUNDLED_DROPS)


def materialise_drop(month: str, bundled: str | Path, dest: str | Path) -> Path:
    """Build `dest` as a DeepPCB-layout folder holding only `month`'s board groups.

    Files are copied, not linked: ingest refuses symbolic links in a drop (adapters.Guard),
    as it would any link a real drop holds. An existing dest is replaced, so a rerun
    gives the same drop.
    """
    if month not in BUNDLED_DROPS:
        raise KeyError(f"no bundled drop for month {month!r}; known: {', '.join(months())}")
    src_root, dest = Path(bundled).resolve(), Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    for group in BUNDLED_DROPS[month]:
        src = src_root / group
        if not src.is_dir():
            raise FileNotFoundError(f"{src}: bundled group missing (paths.bundled_data = {bundled})")
        _mirror(src, dest / group)
    return dest


def _mirror(src: Path, dest: Path) -> None:
    for path in sorted(src.rglob("*")):
        if not path.is_file():
            continue
        target = dest / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)  # not copy2: the bundled files are read-only
