"""DVC for the data area: a no-SCM DVC repo whose tracked directory hashes are dataset versions.

Layout: the DVC repo sits at `<workdir>/data` (cfg.paths.data_dir), not at the
workdir itself. A root-level dvc.yaml in the git project then hashes directories
inside `.defectqa/` correctly (runs, models, even `.defectqa/data/accepted`). With
the nested repo at `.defectqa` itself, the parent DVC (3.67) silently hashes every
directory dep/out under it as empty (nfiles 0), so `dvc status` never sees changes.
The default remote is the folder `<workdir>/dvc-remote` (cfg.paths.dvc_remote overrides).
"""
from __future__ import annotations

import logging
from pathlib import Path

from components.config import Config

REMOTE_NAME = "default"


def data_repo_root(cfg: Config) -> Path:
    """Where the data DVC repo lives: `<workdir>/data`."""
    return cfg.paths.data_dir


def remote_url(cfg: Config) -> str:
    """cfg.paths.dvc_remote, or the local folder `<workdir>/dvc-remote`; local paths made absolute."""
    url = cfg.paths.dvc_remote or str(cfg.paths.root / "dvc-remote")
    return url if "://" in url else str(Path(url).expanduser().resolve())


def ensure_repo(root: str | Path, remote: str) -> Path:
    """Create (if needed) a no-SCM DVC repo at root with `remote` as its default remote."""
    from dvc.repo import Repo

    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    if not (root / ".dvc").is_dir():
        _quiet_init(root)
    with Repo(str(root)) as repo:
        conf = repo.config.read("repo")
        url = conf.get("remote", {}).get(REMOTE_NAME, {}).get("url")
        if url != remote or conf.get("core", {}).get("remote") != REMOTE_NAME:
            with repo.config.edit("repo") as edit:
                edit["remote"][REMOTE_NAME] = {"url": remote}
                edit["core"]["remote"] = REMOTE_NAME
                edit["core"]["analytics"] = False
    if "://" not in remote:
        Path(remote).mkdir(parents=True, exist_ok=True)
    return root


def _quiet_init(root: Path) -> None:
    from dvc.repo import Repo

    log = logging.getLogger("dvc.repo.init")
    level = log.level
    log.setLevel(logging.WARNING)  # Repo.init logs a banner meant for the CLI
    try:
        Repo.init(str(root), no_scm=True).close()
    finally:
        log.setLevel(level)


def ensure_data_repo(cfg: Config) -> Path:
    """The data DVC repo for cfg, created on first use."""
    return ensure_repo(data_repo_root(cfg), remote_url(cfg))


def add(root: str | Path, path: str | Path) -> str:
    """`dvc add` path (inside root) and return its hash: the md5 of the directory listing, no '.dir'."""
    from dvc.repo import Repo

    with Repo(str(Path(root).resolve())) as repo:
        stages = repo.add(str(Path(path).resolve()))
        return _strip(stages[0].outs[0].hash_info.value)


def tracked_hash(root: str | Path, path: str | Path) -> str | None:
    """The hash recorded in path's `.dvc` file, or None when path is not tracked."""
    import yaml

    dvcfile = Path(path).resolve().with_name(Path(path).name + ".dvc")
    if not dvcfile.exists():
        return None
    outs = (yaml.safe_load(dvcfile.read_text()) or {}).get("outs") or [{}]
    value = outs[0].get("md5")
    return _strip(value) if value else None


def push(root: str | Path, path: str | Path | None = None) -> int:
    """Push path's data (or everything tracked) to the default remote; returns files pushed."""
    from dvc.repo import Repo

    with Repo(str(Path(root).resolve())) as repo:
        targets = [str(Path(path).resolve()) + ".dvc"] if path else None
        return repo.push(targets=targets)


def add_and_push(root: str | Path, path: str | Path) -> str:
    """dvc add + push; returns the dataset version hash."""
    digest = add(root, path)
    push(root, path)
    return digest


def _strip(value: str) -> str:
    return value[: -len(".dir")] if value.endswith(".dir") else value
