"""The DVC wrapper, against real DVC in a tmp folder."""
from __future__ import annotations

import yaml

from components.data import versioning


def test_repo_add_push_and_hash(tmp_path):
    root, remote = tmp_path / "data", tmp_path / "remote"
    versioning.ensure_repo(root, str(remote))
    versioning.ensure_repo(root, str(remote))  # idempotent
    assert (root / ".dvc" / "config").read_text().count("no_scm") == 1
    folder = root / "accepted" / "m1"
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("a")

    digest = versioning.add_and_push(root, root / "accepted")

    recorded = yaml.safe_load((root / "accepted.dvc").read_text())["outs"][0]["md5"]
    assert recorded == f"{digest}.dir" and versioning.tracked_hash(root, root / "accepted") == digest
    assert (remote / "files" / "md5" / digest[:2] / f"{digest[2:]}.dir").is_file()
    assert versioning.add(root, root / "accepted") == digest  # same content, same version
    (folder / "b.txt").write_text("b")
    assert versioning.add(root, root / "accepted") != digest
    assert versioning.tracked_hash(root, root / "nothing") is None
