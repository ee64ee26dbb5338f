"""Group-wise split and the drift report (pure functions, no IO)."""
from __future__ import annotations

from components.config import CLASSES, Config
from components.data.records import Box, Sample
from components.data.split import group_splits, split_groups, split_samples
from components.data.validate import drift_report, drift_table


def _samples(groups: dict[str, int], month: str = "") -> list[Sample]:
    return [Sample(f"{g}-{i}", g, f"/x/{g}-{i}_test.jpg", None, month=month) for g, n in groups.items()
            for i in range(n)]


def test_listed_groups_go_to_their_split():
    where = group_splits(_samples({"group92000": 1, "group77000": 1, "group00041": 1}), Config())
    assert where == {"group92000": "eval", "group77000": "calib", "group00041": "train"}


def test_each_drop_holds_out_a_share_of_its_new_groups_and_keeps_it():
    cfg = Config()
    month1 = _samples({f"a{i}": 1 for i in range(10)}, "2026-01")
    first = group_splits(month1, cfg)
    assert sorted(first.values()).count("eval") == 2  # 0.2 of 10
    # a one-group drop trains on its group; a five-group drop holds out one of its own
    later = month1 + _samples({"b0": 2}, "2026-02") + _samples({f"c{i}": 1 for i in range(5)}, "2026-03")
    where = group_splits(later, cfg)
    assert {g: where[g] for g in first} == first  # earlier months' splits never change
    assert where["b0"] == "train" and [where[f"c{i}"] for i in range(5)].count("eval") == 1
    # the held-out set the gate judges is the union over the months
    assert len(split_samples(later, cfg)["eval"]) == 3
    # a group seen again in a later month keeps the split its first month gave it
    again = later + _samples({g: 1 for g, s in first.items() if s == "eval"}, "2026-04")
    assert group_splits(again, cfg) == where


def test_the_bundled_months_hold_out_the_listed_group_only():
    cfg = Config()
    month1 = {"group00041": 2, "group13000": 2, "group20085": 2, "group77000": 2, "group92000": 2}
    samples = _samples(month1, "2026-01") + _samples({"group44000": 2}, "2026-02") + \
        _samples({"group50600": 2}, "2026-03")
    assert split_groups(samples, cfg) == {"train": ["group00041", "group13000", "group20085", "group44000",
                                                    "group50600"], "calib": ["group77000"], "eval": ["group92000"]}


def test_no_group_in_two_splits_and_hash_is_stable():
    cfg = Config()
    groups = {f"line{i:03d}": 3 for i in range(200)} | {"group92000": 2, "group77000": 2}
    parts = split_groups(_samples(groups), cfg)
    seen = [g for gs in parts.values() for g in gs]
    assert len(seen) == len(set(seen)) == len(groups)
    share = sum(g.startswith("line") for g in parts["eval"]) / 200
    assert 0.1 < share < 0.3  # ~holdout_share of the unlisted groups
    assert split_groups(_samples(groups), cfg) == parts


def test_holdout_share_extremes():
    cfg = Config()
    cfg.data.holdout_share = 0.0
    assert not [s for s in split_samples(_samples({"a": 2, "b": 2}), cfg)["eval"]]
    cfg.data.holdout_share = 1.0
    assert len(split_samples(_samples({"a": 2, "b": 2}), cfg)["eval"]) == 4


def test_a_line_without_the_listed_calibration_groups_calibrates_on_a_share_of_its_own():
    cfg = Config()
    coils = {f"coil{i:03d}": 2 for i in range(200)}
    parts = split_groups(_samples(coils), cfg)
    assert 0.05 < len(parts["calib"]) / 200 < 0.15 and 0.1 < len(parts["eval"]) / 200 < 0.3
    # with a listed calibration group present, only it calibrates (the pcb line's split unchanged)
    parts = split_groups(_samples(coils | {"group77000": 2}), cfg)
    assert parts["calib"] == ["group77000"]
    cfg.data.calib_share = 0.0
    assert not split_groups(_samples(coils), cfg)["calib"]


def _with_boxes(classes: list[str]) -> list[Sample]:
    return [Sample("s", "g", "t.jpg", None, [Box(0, 0, 1, 1, c) for c in classes])]


def test_drift_report_flags_big_share_changes():
    prev = _with_boxes(["open"] * 10 + ["short"] * 10)
    cur = _with_boxes(["open"] * 4 + ["short"] * 16)
    report = drift_report(cur, prev, 0.15, "2026-01", CLASSES)
    assert report["drifted"] == ["open", "short"] and report["warning"]
    assert abs(report["classes"]["open"]["delta"] + 0.3) < 1e-9
    table = drift_table(report)
    assert list(table.columns) == ["class", "previous", "current", "delta", "drifted"] and len(table) == 6
    calm = drift_report(_with_boxes(["open"] * 9 + ["short"] * 11), prev, 0.15, "2026-01", CLASSES)
    assert calm["drifted"] == [] and not calm["warning"]


def test_drift_report_without_previous_month():
    report = drift_report(_with_boxes(["spur"]), [], 0.15, None, CLASSES)
    assert report["previous_month"] is None and report["classes"]["spur"]["current"] == 1.0 and not report["warning"]
