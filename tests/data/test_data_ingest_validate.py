"""Ingest + GX validation end to end, with real DVC, real GX and real DeepPCB images in tmp.

One workdir is built once per module, month by month, like a real deployment:
  2026-01  a clean DeepPCB drop                      -> all accepted
  2026-02  a drop full of bad rows (loose max_bad_share) -> bad rows quarantined with reasons
  2026-03  too many bad rows under the default limit -> DropRejected, nothing accepted
  2026-04  a VOC drop (no templates), one unknown class -> accepted but that row
Then every test checks one promise; month 2026-01's files must stay byte-identical.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from components.data import versioning
from components.data.ingest import DropConflict, DropError, EmptyDrop, ingest, write_manifest
from components.data.split import load_accepted, split_groups
from components.data.validate import DropRejected, dataset_version, validate_drop

GOOD = ["00041000", "00041001", "92000000", "92000001"]


def _bad_drop(root: Path, drop: Path, kit) -> None:
    """Three good rows plus one row per failure mode (a duplicate pair counts two)."""
    put = lambda sid, **kw: kit.put_sample(root, drop, sid, **kw)  # noqa: E731
    for sid in ("13000000", "13000001", "13000002"):
        put(sid)
    corrupt = put("13000003")
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg" * 50)
    truncated = put("13000004")
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 3])
    put("13000005", annotation="600 600 700 650 1\n")  # box out of bounds
    put("13000006", annotation="100 100 50 150 2\n")  # inverted box
    put("13000007", annotation="10 10 50 50 9\n")  # unknown class (type 9)
    put("13000008", template=False)  # missing template
    put("13000009", annotation="1 2 three 4 5\n")  # annotation does not parse
    put("13000012", annotation="nan 10 50 50 1\n")  # NaN passes every bounds check unless refused
    put("13000013", annotation="10 10 inf 50 1\n")  # infinite coordinate
    put("13000010")
    put("13000010", group="group13999")  # duplicate id inside the drop
    put("00041000", group="group13000")  # id already accepted in 2026-01
    small = put("13000011")
    from PIL import Image

    for img in (small, small.with_name("13000011_temp.jpg")):
        Image.open(img).resize((320, 320)).save(img)  # wrong size (template matches, so only size fails)


def _voc_drop(root: Path, drop: Path, kit) -> None:
    drop.mkdir(parents=True)
    boxes = {"voc1": "pinhole", "voc2": "open", "voc3": "spurious_copper", "voc4": "mouse_bite", "voc5": "scratch"}
    for i, (name, cls) in enumerate(boxes.items()):
        test, _, _ = kit.real_files(root, f"4400006{i + 2}")
        shutil.copyfile(test, drop / f"{name}.jpg")
        (drop / f"{name}.xml").write_text(
            f"<annotation><filename>{name}.jpg</filename><object><name>{cls}</name>"
            "<bndbox><xmin>10</xmin><ymin>10</ymin><xmax>60</xmax><ymax>70</ymax></bndbox></object></annotation>")


@pytest.fixture(scope="module")
def world(tmp_path_factory, deeppcb, kit):
    tmp = tmp_path_factory.mktemp("world")
    cfg = kit.make_cfg(tmp / "wd")
    w = {"cfg": cfg, "tmp": tmp}
    good = tmp / "drop01"
    for sid in GOOD:
        kit.put_sample(deeppcb, good, sid)
    w["ing1"] = ingest(good, "2026-01", cfg)
    w["res1"] = validate_drop("2026-01", cfg)
    w["snap1"] = kit.snapshot(cfg.paths.data_dir / "accepted" / "2026-01")
    w["ver1"] = versioning.tracked_hash(cfg.paths.data_dir, cfg.paths.data_dir / "accepted")

    _bad_drop(deeppcb, tmp / "drop02", kit)
    ingest(tmp / "drop02", "2026-02", cfg)
    w["res2"] = validate_drop("2026-02", kit.make_cfg(tmp / "wd", max_bad_share=0.9))
    w["snap2"] = kit.snapshot(cfg.paths.data_dir / "accepted")

    rej = tmp / "drop03"
    kit.put_sample(deeppcb, rej, "20085000")
    kit.put_sample(deeppcb, rej, "20085001").write_bytes(b"garbage")
    ingest(rej, "2026-03", cfg)
    with pytest.raises(DropRejected) as exc:
        validate_drop("2026-03", cfg)
    w["rejected"] = exc.value
    w["snap3"] = kit.snapshot(cfg.paths.data_dir / "accepted")

    _voc_drop(deeppcb, tmp / "drop04", kit)
    ingest(tmp / "drop04", "2026-04", cfg)
    w["res4"] = validate_drop("2026-04", cfg)
    return w


def _reasons(qdir: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with open(Path(qdir) / "reasons.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["id"], []).append(f"{row['file']}: {row['reason']}")
    return out


def test_clean_month_accepted_and_versioned(world):
    cfg, res = world["cfg"], world["res1"]
    assert (res.n_rows, res.n_good, res.n_bad) == (4, 4, 0)
    assert res.gx_result["success"] is True
    assert (Path(res.data_docs_dir) / "index.html").is_file()
    assert res.dataset_version == world["ver1"]
    remote = cfg.paths.root / "dvc-remote" / "files" / "md5"
    assert (remote / res.dataset_version[:2] / f"{res.dataset_version[2:]}.dir").is_file()  # pushed
    assert cfg.paths.dataset_version_file.read_text().strip() == world["res4"].dataset_version
    manifest = Path(res.accepted_dir) / "manifest.csv"
    assert sorted(r["sample_id"] for r in csv.DictReader(open(manifest))) == GOOD
    assert world["ing1"].drop_hash and world["ing1"].n_samples == 4


def test_reingest_is_noop_and_conflict_is_refused(world, deeppcb, kit):
    cfg, tmp = world["cfg"], world["tmp"]
    again = ingest(tmp / "drop01", "2026-01", cfg)
    assert not again.created and again.drop_hash == world["ing1"].drop_hash
    other = tmp / "drop01b"
    kit.put_sample(deeppcb, other, "00041002")
    before = kit.snapshot(cfg.paths.data_dir / "drops" / "2026-01")
    with pytest.raises(DropConflict, match="2026-01"):
        ingest(other, "2026-01", cfg)
    assert kit.snapshot(cfg.paths.data_dir / "drops" / "2026-01") == before
    assert validate_drop("2026-01", cfg).dataset_version == world["ver1"]  # the stored result, nothing redone
    assert dataset_version(cfg) == world["res4"].dataset_version


def test_bad_rows_quarantined_with_reasons(world):
    res = world["res2"]
    reasons = _reasons(res.quarantine_dir)
    expect = {
        "13000003": "test image does not decode",
        "13000004": "truncated",
        "13000005": "box out of bounds",
        "13000006": "inverted box",
        "13000007": "unknown class unknown-type-9",
        "13000008": "template missing",
        "13000009": "annotation does not parse",
        "13000010": "duplicate id 13000010 within the drop",
        "00041000": "id 00041000 already accepted in month 2026-01",
        "13000011": "image width 320 px",
        "13000012": "annotation does not parse: 13000012.txt:1: non-finite coordinate",
        "13000013": "annotation does not parse: 13000013.txt:1: non-finite coordinate",
    }
    for sid, text in expect.items():
        assert any(text in r for r in reasons[sid]), (sid, reasons.get(sid))
    assert set(reasons) == set(expect)
    assert len([r for r in reasons["13000010"] if "duplicate" in r]) == 2  # both copies
    assert any(r.startswith("group13000/13000008_temp.jpg") for r in reasons["13000008"])
    assert (Path(res.quarantine_dir) / "group13000" / "13000003_test.jpg").is_file()
    assert any(r.startswith("group13000/13000012.txt:") for r in reasons["13000012"])
    assert (res.n_rows, res.n_good, res.n_bad) == (16, 3, 13)
    assert res.gx_result["success"] is False
    accepted = Path(res.accepted_dir)
    assert sorted(p.name for p in accepted.rglob("*_test.jpg")) == [f"1300000{i}_test.jpg" for i in range(3)]


def test_rejected_drop_names_files_and_accepts_nothing(world):
    cfg, err = world["cfg"], world["rejected"]
    msg = str(err)
    assert "2026-03" in msg and "20085001_test.jpg" in msg and "does not decode" in msg
    assert not (cfg.paths.data_dir / "accepted" / "2026-03").exists()
    assert world["snap3"] == world["snap2"]
    assert err.result is not None and err.result.n_bad == 1 and err.result.dataset_version is None


def test_empty_and_missing_drops_are_clear_errors(world):
    cfg, tmp = world["cfg"], world["tmp"]
    empty = tmp / "empty"
    empty.mkdir()
    with pytest.raises(EmptyDrop, match=str(empty)):
        ingest(empty, "2026-09", cfg)
    with pytest.raises(DropError, match="not been ingested"):
        validate_drop("2026-09", cfg)
    hollow = cfg.paths.data_dir / "drops" / "2026-08"  # a manifest with no rows, as if hand-made
    hollow.mkdir()
    write_manifest([], hollow / "manifest.csv")
    with pytest.raises(DropRejected, match="empty"):
        validate_drop("2026-08", cfg)
    assert not (cfg.paths.data_dir / "accepted" / "2026-08").exists()


def test_voc_month_without_templates(world):
    res = world["res4"]
    assert (res.n_good, res.n_bad) == (4, 1)
    assert _reasons(res.quarantine_dir)["voc5"][0].endswith("unknown class scratch")
    assert res.drift["previous_month"] == "2026-02"
    assert res.drift["n_boxes"] == 4


def test_earlier_months_untouched_and_loadable(world, kit):
    cfg = world["cfg"]
    assert kit.snapshot(cfg.paths.data_dir / "accepted" / "2026-01") == world["snap1"]
    assert world["res2"].dataset_version != world["res1"].dataset_version != world["res4"].dataset_version
    samples = load_accepted(cfg)
    assert len(samples) == 4 + 3 + 4
    assert all(Path(s.test_path).is_file() for s in samples)
    assert [s.template_path for s in samples if s.month == "2026-04"] == [None] * 4
    parts = split_groups(samples, cfg)
    groups = [g for gs in parts.values() for g in gs]
    assert len(groups) == len(set(groups)) and "group92000" in parts["eval"]


def test_rerun_finishes_an_interrupted_versioning(world):
    cfg = world["cfg"]
    record = cfg.paths.data_dir / "reports" / "2026-04" / "validation.json"
    saved = record.read_text()
    data = json.loads(saved)
    record.write_text(json.dumps({**data, "dataset_version": None}))  # as if the push had failed
    try:
        assert validate_drop("2026-04", cfg).dataset_version == world["res4"].dataset_version
        assert json.loads(record.read_text())["dataset_version"] == world["res4"].dataset_version
    finally:
        record.write_text(saved)
