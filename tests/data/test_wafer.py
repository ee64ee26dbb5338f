"""Wafer-map drops (.npz and PNG folders), their checks, and what code measures on a map."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from components.data.wafer import FAIL, PASS, WaferMap, check, month_of, read_npz, read_png_folder, write_png
from components.qa.wafer_measure import measure

LABELS = ("None", "Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Near-full", "Random", "Scratch")


def wafer(side: int = 41) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A round wafer of passing dies; its rows and cols grids."""
    ys, xs = np.mgrid[:side, :side]
    c = (side - 1) / 2
    grid = np.where(np.hypot(ys - c, xs - c) <= c, PASS, 0).astype(np.uint8)
    return grid, ys, xs


def _save_npz(path, grids, labels, **extra):
    flat = np.concatenate([g.ravel() for g in grids])
    offsets = np.cumsum([0] + [g.size for g in grids])
    np.savez(path, maps=flat, offsets=offsets, shapes=np.array([g.shape for g in grids]), labels=np.array(labels),
             **extra)


def test_an_npz_drop_reads_back_map_by_map(tmp_path):
    a, _, _ = wafer(21)
    b = wafer(31)[0]
    b[10:14, 10:14] = FAIL
    _save_npz(tmp_path / "d.npz", [a, b], ["None", "Center"])
    maps = read_npz(tmp_path / "d.npz")
    assert [m.label for m in maps] == ["None", "Center"] and [m.map_id for m in maps] == ["0", "1"]
    assert np.array_equal(maps[1].grid, b) and maps[1].source == "d.npz[1]"


def test_a_broken_npz_is_refused_naming_what_is_wrong(tmp_path):
    a = wafer(21)[0]
    np.savez(tmp_path / "no-labels.npz", maps=a.ravel(), offsets=[0, a.size], shapes=[a.shape])
    with pytest.raises(ValueError, match="no-labels.npz: missing array.*labels"):
        read_npz(tmp_path / "no-labels.npz")
    np.savez(tmp_path / "short.npz", maps=a.ravel()[:-3], offsets=[0, a.size - 3], shapes=[a.shape], labels=["None"])
    with pytest.raises(ValueError, match="map 0 has 438 values, its shape says 21 x 21"):
        read_npz(tmp_path / "short.npz")
    (tmp_path / "text.npz").write_text("not numpy")
    with pytest.raises(ValueError, match="not a readable .npz"):
        read_npz(tmp_path / "text.npz")


def test_the_checks_name_every_reason_a_map_is_bad():
    good = wafer(21)[0]
    odd = good.copy()
    odd[5, 5] = 7
    maps = [WaferMap("a", good, "None", "x"), WaferMap("b", odd, "Center", "x"),
            WaferMap("c", np.zeros((21, 21), np.uint8), "Loc", "x"), WaferMap("a", good, "Blob", "x"),
            WaferMap("e", wafer(5)[0], "None", "x")]
    reasons = check(maps, LABELS, 8, 300)
    assert 0 not in reasons
    assert "values other than 0/128/255: [7]" in reasons[1]
    assert reasons[2] == ["no die on the wafer (every value 0)"]
    assert any("label 'Blob'" in r for r in reasons[3]) and any("id a repeats map 0" in r for r in reasons[3])
    assert reasons[4] == ["shape 5 x 5 outside 8..300 per side"]


def test_a_png_folder_reads_with_its_labels_and_refuses_links(tmp_path):
    grid = wafer(25)[0]
    write_png(WaferMap("m1", grid, "None", ""), tmp_path / "m1.png")
    (tmp_path / "outside.png").write_bytes(b"")
    drop = tmp_path / "drop"
    drop.mkdir()
    write_png(WaferMap("w1", grid, "None", ""), drop / "w1.png")
    (drop / "link.png").symlink_to(tmp_path / "m1.png")
    with (drop / "labels.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["file", "label"], ["w1.png", "Loc"], ["link.png", "None"], ["gone.png", "None"],
                                 ["../m1.png", "None"]])
    maps, bad = read_png_folder(drop)
    assert [(m.map_id, m.label) for m in maps] == [("w1", "Loc")] and np.array_equal(maps[0].grid, grid)
    why = dict(bad)
    assert "symbolic link" in why["link.png"] and "no such file" in why["gone.png"]
    assert "outside the drop folder" in why["../m1.png"]


def test_months_are_a_stable_function_of_the_id():
    months = ["2026-01", "2026-02", "2026-03"]
    got = [month_of(str(i), months) for i in range(300)]
    assert got == [month_of(str(i), months) for i in range(300)] and set(got) == set(months)


def _noise(grid, rate, seed=0):
    rng = np.random.default_rng(seed)
    out = grid.copy()
    out[(grid == PASS) & (rng.random(grid.shape) < rate)] = FAIL
    return out


def test_measure_reads_where_the_failing_dies_are_and_their_shape():
    g, ys, xs = wafer(41)
    c = 20
    r = np.hypot(ys - c, xs - c)
    on = g == PASS

    def with_fail(mask):
        out = _noise(g, 0.03)
        out[on & mask] = FAIL
        return out

    clean = measure(g)
    assert (clean.failing, clean.location, clean.morphology) == (0, "none", "none") and clean.dies == int(on.sum())
    centre = measure(with_fail(r <= 5))
    assert (centre.location, centre.morphology) == ("centre", "cluster")
    ring = measure(with_fail(r >= 18))
    assert (ring.location, ring.morphology) == ("ring", "ring")
    arc = measure(with_fail((r >= 16) & (ys > 28) & (xs < 12)))
    assert arc.location == "edge"
    blob = measure(with_fail(np.hypot(ys - 11, xs - 29) <= 4))
    assert (blob.location, blob.morphology) == ("top-right", "cluster")
    scratch = g.copy()
    scratch[on & (np.abs(ys - xs) == 0) & (r < 15)] = FAIL
    assert measure(scratch).morphology == "line"
    scattered = measure(_noise(g, 0.08, seed=1))
    assert (scattered.location, scattered.morphology) == ("everywhere", "scattered")
    full = measure(with_fail(r <= 30))
    assert full.morphology == "near-full" and full.share > 0.8
    assert centre.failing == int((with_fail(r <= 5) == FAIL).sum()) and 0 < centre.share < 1
    with pytest.raises(ValueError, match="no die"):
        measure(np.zeros((9, 9), np.uint8))
