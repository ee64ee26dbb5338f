"""The wafer line's drops end to end: ingest, GX validation, quarantine, drift, DVC, with real GX,
real DVC and real WM-811K maps in tmp.

One workdir is built once per module, month by month:
  2026-01  72 real maps, 8 of each label (.npz)               -> all accepted
  2026-02  50 good real maps (40 'None') + 7 bad ones (.npz)   -> the bad ones quarantined, drift on 'None'
  2026-03  5 good + 5 bad (a folder of .npz files)             -> rejected, nothing accepted
  2026-04  6 real maps as PNGs + labels.csv with a missing file -> the missing one quarantined
"""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest

from components import config
from components.data import versioning
from components.data.ingest import DropConflict, DropError, EmptyDrop
from components.data.validate import DropRejected
from components.data.wafer import LABELS_CSV, PASS, WaferMap, month_of, read_npz, write_png
from components.data.wafer_drop import (
    WAFER_MONTHS,
    WaferDropRejected,
    accepted_maps,
    accepted_root,
    bundled_wafer_drop,
    ingest_wafer,
    quarantine_dir,
    save_maps,
    validate_wafer,
)

TRAIN = Path(__file__).resolve().parents[2] / "../shared/data/wm811k/train.npz"


@pytest.fixture(scope="module")
def train() -> list[WaferMap]:
    if not TRAIN.is_file():
        pytest.skip(f"WM-811K train part not found at {TRAIN}")
    return read_npz(TRAIN)


def _by_label(train: list[WaferMap], label: str, start: int, n: int) -> list[WaferMap]:
    """n real maps of label, from its start-th on (each with its own train index as id)."""
    return [m for m in train if m.label == label][start:start + n]


def _round(side: int, label: str, map_id: str) -> WaferMap:
    """A synthetic round wafer of passing dies."""
    ys, xs = np.mgrid[:side, :side]
    c = (side - 1) / 2
    return WaferMap(map_id, np.where(np.hypot(ys - c, xs - c) <= c, PASS, 0).astype(np.uint8), label, "synthetic")


def _bad_maps(tag: str = "") -> list[WaferMap]:
    """One map per failure mode (the repeated id is two maps)."""
    odd = _round(21, "Loc", f"odd-value{tag}")
    odd.grid[10, 10] = 7
    return [odd, _round(21, "Blob", f"blob-label{tag}"),
            WaferMap(f"all-zero{tag}", np.zeros((21, 21), np.uint8), "None", "synthetic"),
            _round(21, "None", f"dup{tag}"), _round(23, "Center", f"dup{tag}"), _round(4, "None", f"tiny{tag}")]


def _version(cfg) -> str | None:
    return versioning.tracked_hash(cfg.paths.data_dir, accepted_root(cfg))


@pytest.fixture(scope="module")
def world(tmp_path_factory, train):
    tmp = tmp_path_factory.mktemp("wafer-world")
    cfg = config.load(None, [f"paths.workdir={tmp / 'wd'}"], line="wafer")
    w = {"cfg": cfg, "tmp": tmp}

    w["good1"] = [m for label in cfg.data.classes for m in _by_label(train, label, 0, 8)]
    save_maps(w["good1"], tmp / "m01.npz")
    w["ing1"] = ingest_wafer(tmp / "m01.npz", "2026-01", cfg)
    w["res1"] = validate_wafer("2026-01", cfg)
    w["ver1"] = _version(cfg)

    w["good2"] = _by_label(train, "None", 8, 40) + _by_label(train, "Loc", 8, 10)
    seen = w["good1"][0]
    w["seen"] = seen.map_id
    save_maps(w["good2"] + _bad_maps() + [WaferMap(seen.map_id, seen.grid, seen.label, "again")], tmp / "m02.npz")
    ingest_wafer(tmp / "m02.npz", "2026-02", cfg)
    w["res2"] = validate_wafer("2026-02", cfg)
    w["ver2"] = _version(cfg)

    folder = tmp / "m03"
    folder.mkdir()
    save_maps(_by_label(train, "Donut", 8, 5), folder / "a.npz")
    save_maps(_bad_maps("-3")[:5], folder / "b.npz")  # the repeated id twice
    ingest_wafer(folder, "2026-03", cfg)
    with pytest.raises(WaferDropRejected) as exc:
        validate_wafer("2026-03", cfg)
    w["rejected"] = exc.value
    w["ver3"] = _version(cfg)

    pngs = tmp / "m04"
    pngs.mkdir()
    w["good4"] = _by_label(train, "Scratch", 8, 6)
    rows = []
    for i, m in enumerate(w["good4"]):
        write_png(m, pngs / f"p{i}.png")
        rows.append({"file": f"p{i}.png", "label": m.label})
    rows.append({"file": "gone.png", "label": "Loc"})
    with open(pngs / LABELS_CSV, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["file", "label"])
        writer.writeheader()
        writer.writerows(rows)
    w["ing4"] = ingest_wafer(pngs, "2026-04", cfg)
    w["res4"] = validate_wafer("2026-04", cfg)
    return w


def _reasons_csv(qdir: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with open(qdir / "reasons.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["map_id"], []).append(row["reasons"])
    return out


def test_a_good_drop_is_accepted_and_versioned(world):
    cfg, res = world["cfg"], world["res1"]
    assert (res["n_rows"], res["n_good"], res["n_bad"], res["bad"]) == (72, 72, 0, [])
    assert res["gx_success"] is True and (Path(res["data_docs_dir"]) / "index.html").is_file()
    assert res["dataset_version"] == world["ver1"]
    remote = cfg.paths.root / "dvc-remote" / "files" / "md5"
    assert (remote / res["dataset_version"][:2] / f"{res['dataset_version'][2:]}.dir").is_file()  # pushed
    assert cfg.paths.dataset_version_file.read_text().strip() == world["res4"]["dataset_version"]
    got = accepted_maps(cfg, ["2026-01"])
    assert [m.map_id for m in got] == [m.map_id for m in world["good1"]]
    assert all(np.array_equal(a.grid, b.grid) and a.label == b.label for a, b in zip(got, world["good1"], strict=True))
    assert world["ing1"]["n_maps"] == 72 and world["ing1"]["n_refused"] == 0


def test_bad_maps_are_quarantined_with_reasons_naming_the_problem(world):
    cfg, res = world["cfg"], world["res2"]
    expect = {"odd-value": "values other than 0/128/255: 7", "blob-label": "label 'Blob' is not one of",
              "all-zero": "no die on the wafer", "dup": "id dup repeats within the drop",
              "tiny": "4 rows, expected 5..400", world["seen"]: "already accepted in month 2026-01"}
    assert res["n_bad"] == 7 and res["n_good"] == 50 and res["gx_success"] is False
    bad = {}
    for b in res["bad"]:
        bad.setdefault(b["map_id"], []).extend(b["reasons"])
    assert set(bad) == set(expect)
    for map_id, words in expect.items():
        assert any(words in r for r in bad[map_id]), (map_id, bad[map_id])
    assert any("4 cols, expected 5..400" in r for r in bad["tiny"])
    assert len([b for b in res["bad"] if b["map_id"] == "dup"]) == 2  # both copies: which one is right is unknown
    qdir = quarantine_dir(cfg, "2026-02")
    assert set(_reasons_csv(qdir)) == set(expect)
    assert sorted(m.map_id for m in read_npz(qdir / "maps.npz")) == sorted(b["map_id"] for b in res["bad"])
    assert [m.map_id for m in accepted_maps(cfg, ["2026-02"])] == [m.map_id for m in world["good2"]]
    assert res["dataset_version"] == world["ver2"] != world["ver1"]


def test_a_drop_over_max_bad_share_is_refused_whole(world):
    cfg, exc = world["cfg"], world["rejected"]
    assert isinstance(exc, DropRejected) and isinstance(exc, DropError)
    assert "5 of 10 maps bad (50% > max_bad_share 20%)" in str(exc) and "nothing accepted" in str(exc)
    assert exc.result["n_bad"] == 5 and exc.result["accepted_dir"] is None
    assert not (accepted_root(cfg) / "2026-03").exists() and world["ver3"] == world["ver2"]
    assert sum(map(len, _reasons_csv(quarantine_dir(cfg, "2026-03")).values())) == 5
    with pytest.raises(WaferDropRejected):
        validate_wafer("2026-03", cfg)  # still refused, still nothing accepted
    assert not (accepted_root(cfg) / "2026-03").exists()


def test_reingest_is_a_noop_and_other_content_conflicts(world):
    cfg, tmp = world["cfg"], world["tmp"]
    assert ingest_wafer(tmp / "m01.npz", "2026-01", cfg) == world["ing1"]
    save_maps(world["good1"][:-1], tmp / "m01b.npz")
    drops = Path(world["ing1"]["drop_dir"])
    before = (drops / "maps.npz").read_bytes()
    with pytest.raises(DropConflict, match="2026-01"):
        ingest_wafer(tmp / "m01b.npz", "2026-01", cfg)
    assert (drops / "maps.npz").read_bytes() == before
    assert validate_wafer("2026-01", cfg) == world["res1"]  # the stored result, nothing redone
    (tmp / "empty").mkdir()
    with pytest.raises(EmptyDrop):
        ingest_wafer(tmp / "empty", "2026-09", cfg)
    (tmp / "broken.npz").write_text("not numpy")
    with pytest.raises(ValueError, match="broken.npz"):
        ingest_wafer(tmp / "broken.npz", "2026-09", cfg)
    with pytest.raises(ValueError, match="wafer-map"):
        validate_wafer("2026-01", config.load(None, [f"paths.workdir={tmp / 'wd'}"]))  # the pcb line's config


def test_png_folder_round_trip_with_a_missing_file_refused(world):
    cfg, res = world["cfg"], world["res4"]
    assert (world["ing4"]["n_maps"], world["ing4"]["n_refused"]) == (6, 1)
    assert (res["n_rows"], res["n_good"], res["n_bad"]) == (7, 6, 1)
    (miss,) = res["bad"]
    assert miss["source"] == "gone.png" and "no such file" in miss["reasons"][0]
    got = accepted_maps(cfg, ["2026-04"])
    assert [m.map_id for m in got] == [f"p{i}" for i in range(6)]
    assert all(np.array_equal(a.grid, b.grid) and a.label == b.label for a, b in zip(got, world["good4"], strict=True))
    assert [m.map_id for m in accepted_maps(cfg)][:72] == [m.map_id for m in world["good1"]]  # oldest month first


def test_drift_compares_label_shares_with_the_previous_month(world):
    first, second, fourth = world["res1"]["drift"], world["res2"]["drift"], world["res4"]["drift"]
    assert first["previous_month"] is None and not first["warning"]
    assert second["previous_month"] == "2026-01" and second["n_maps"] == 50
    none = second["classes"]["None"]
    assert none["previous"] == pytest.approx(8 / 72) and none["current"] == pytest.approx(40 / 50)
    assert none["delta"] == pytest.approx(40 / 50 - 8 / 72)
    assert second["drifted"] == ["None"]  # Loc rose 0.09, the rest fell 0.11: within 0.15
    assert second["warning"] and fourth["previous_month"] == "2026-02"  # 2026-03 was refused
    assert fourth["classes"]["Scratch"]["current"] == 1.0


def test_bundled_months_partition_the_train_part_deterministically(world, train):
    tmp = world["tmp"]
    ids: dict[str, list[str]] = {}
    for month in WAFER_MONTHS:
        path = bundled_wafer_drop(month, TRAIN, WAFER_MONTHS, tmp / "bundled" / f"{month}.npz")
        ids[month] = [m.map_id for m in read_npz(path)]
        assert all(month_of(i, WAFER_MONTHS) == month for i in ids[month])
    every = [i for month in WAFER_MONTHS for i in ids[month]]
    assert sorted(every) == sorted(m.map_id for m in train) and len(set(every)) == len(train)
    assert all(len(v) > len(train) // (2 * len(WAFER_MONTHS)) for v in ids.values())
    again = bundled_wafer_drop(WAFER_MONTHS[0], TRAIN, WAFER_MONTHS, tmp / "again.npz")
    first = tmp / "bundled" / f"{WAFER_MONTHS[0]}.npz"
    assert hashlib.md5(again.read_bytes()).hexdigest() == hashlib.md5(first.read_bytes()).hexdigest()
    with pytest.raises(KeyError, match="2030-01"):
        bundled_wafer_drop("2030-01", TRAIN, WAFER_MONTHS, tmp / "none.npz")
