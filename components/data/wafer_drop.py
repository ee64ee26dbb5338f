"""The wafer line's monthly drops: ingest, GX validation, quarantine, drift, DVC-versioned acceptance.

A drop is an `.npz` file in the shared layout, a folder of `.npz` files, or a folder of map PNGs
with `labels.csv` (components/data/wafer.py reads them). Ingest normalises it; validation judges
each map's facts (`wafer.facts_frame`) with a Great Expectations checkpoint (the one the PCB line
runs, components/data/validate.py), quarantines the maps it fails with their reasons and accepts
the rest, unless too many are bad.

On disk, under `<data_dir>/wafer/` (<data_dir> is the line's DVC repo):
    drops/<month>/maps.npz, refused.csv        the drop as ingested (refused: items it could not read)
    quarantine/<month>/maps.npz, reasons.csv   the bad maps and why (map_id, source, reasons)
    accepted/<month>/maps.npz                  the good maps (accepted/ is DVC-tracked: its hash is
                                               the dataset version)
    reports/<month>/validation.json, facts.csv, gx_result.json, drift.csv, data_docs/index.html

Every `maps.npz` holds maps, offsets, shapes, labels (the shared layout) plus ids and sources, and
is written byte for byte the same for the same maps, so digests and DVC hashes follow content only.
"""
from __future__ import annotations

import csv
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.config import Config
from components.data import versioning, wafer
from components.data.ingest import DropConflict, DropError, EmptyDrop, check_month, tree_digest
from components.data.validate import DropRejected, drift_table, run_checkpoint, share_drift, shares
from components.data.wafer import LABELS_CSV, WaferMap
from components.line import WAFER_KIND

WAFER_MONTHS = ["2026-01", "2026-02", "2026-03"]
"""The months the bundled train part replays as (`bundled_wafer_drop`), oldest first."""
MAPS_NPZ = "maps.npz"
REFUSED_CSV = "refused.csv"
REASONS_CSV = "reasons.csv"
VALIDATION_JSON = "validation.json"
REFUSED_COLUMNS = ["source", "reason"]
REASONS_COLUMNS = ["map_id", "source", "reasons"]
READ_OK = "ok"
"""The `read` fact of a map that was read; an item ingest refused carries its reason instead."""
MIN_DIES = 1
"""A map must show at least one die on the wafer: an all-outside map carries no pattern."""
LISTED_BAD = 30
"""How many bad maps a refusal's message lists; reasons.csv lists them all."""
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
"""Every member of a written .npz gets this zip timestamp (the zip format's earliest), so the
file's bytes depend on its arrays only, never on when it was written."""


class WaferDropRejected(DropRejected):
    """Too many bad maps: nothing of the drop was accepted. `.result` is the validation dict."""


# ---- the data area -------------------------------------------------------------------------


def wafer_root(cfg: Config) -> Path:
    return cfg.paths.data_dir / "wafer"


def drop_dir(cfg: Config, month: str) -> Path:
    return wafer_root(cfg) / "drops" / check_month(month)


def accepted_root(cfg: Config) -> Path:
    """The DVC-tracked folder: its hash is the wafer line's dataset version."""
    return wafer_root(cfg) / "accepted"


def quarantine_dir(cfg: Config, month: str) -> Path:
    return wafer_root(cfg) / "quarantine" / check_month(month)


def reports_dir(cfg: Config, month: str) -> Path:
    return wafer_root(cfg) / "reports" / check_month(month)


def accepted_months(cfg: Config) -> list[str]:
    """Months with accepted maps, oldest first."""
    root = accepted_root(cfg)
    return sorted(p.parent.name for p in root.glob(f"*/{MAPS_NPZ}")) if root.is_dir() else []


def _require_wafer_line(cfg: Config) -> None:
    """Wafer drops live in a wafer-map line's data area; another line's config would mix them
    with its own months (and its dataset version file)."""
    if cfg.line.kind != WAFER_KIND:
        raise ValueError(f"line {cfg.line.name!r} is a {cfg.line.kind!r} line; wafer drops need a {WAFER_KIND} "
                         "line's config (config.load(..., line='wafer'))")


# ---- deterministic .npz of maps ------------------------------------------------------------


def save_maps(maps: list[WaferMap], path: Path) -> Path:
    """maps as an .npz in the shared layout plus ids and sources, the same bytes for the same maps."""
    grids = [np.asarray(m.grid, dtype=np.uint8) for m in maps]
    sizes = [g.size for g in grids]
    arrays = {
        "maps": np.concatenate([g.ravel() for g in grids]) if grids else np.zeros(0, np.uint8),
        "offsets": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        "shapes": np.array([g.shape for g in grids], dtype=np.int64).reshape(len(grids), 2),
        "labels": np.array([m.label for m in maps], dtype=str),
        "ids": np.array([m.map_id for m in maps], dtype=str),
        "sources": np.array([m.source for m in maps], dtype=str),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, array, allow_pickle=False)
    return path


def load_maps(path: Path) -> list[WaferMap]:
    """The maps of a normalised maps.npz, each with the source it was ingested from."""
    maps = wafer.read_npz(path)
    with np.load(path, allow_pickle=False) as data:
        sources = [str(s) for s in data["sources"]] if "sources" in data.files else [m.source for m in maps]
    for m, source in zip(maps, sources, strict=True):
        m.source = source
    return maps


# ---- ingest --------------------------------------------------------------------------------


def ingest_wafer(drop: str | Path, month: str, cfg: Config) -> dict[str, Any]:
    """Normalise a drop into `drops/<month>/` (maps.npz + refused.csv).

    The same content again for the same month is a no-op returning the same result; different
    content raises DropConflict. An empty drop raises EmptyDrop; an unreadable .npz a ValueError
    naming the file. Bad maps are kept as they are: judging them is validation's job.
    """
    _require_wafer_line(cfg)
    check_month(month)
    maps, refused = read_drop(Path(drop))
    dest = drop_dir(cfg, month)
    staging = wafer_root(cfg) / ".staging" / f"drop-{month}"
    _rmtree(staging)
    staging.mkdir(parents=True)
    save_maps(maps, staging / MAPS_NPZ)
    _write_csv(staging / REFUSED_CSV, REFUSED_COLUMNS, [dict(zip(REFUSED_COLUMNS, r, strict=True)) for r in refused])
    digest = tree_digest(staging)
    if dest.exists():
        _rmtree(staging)
        if tree_digest(dest) != digest:
            raise DropConflict(f"month {month} was already ingested at {dest} with different content; refusing to "
                               "overwrite (ingest the new drop under a new month label)")
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(dest)
    return {"month": month, "n_maps": len(maps), "n_refused": len(refused), "drop_dir": str(dest),
            "drop_hash": digest}


def read_drop(drop: Path) -> tuple[list[WaferMap], list[tuple[str, str]]]:
    """The maps of a drop and (source, reason) for each item that could not be read.

    A folder may hold .npz files (read in name order) and/or map PNGs with labels.csv.
    """
    if drop.is_file():
        maps, refused = wafer.read_npz(drop), []
    elif drop.is_dir():
        maps, refused = [], []
        for path in sorted(drop.glob("*.npz")):
            maps += wafer.read_npz(path)
        if (drop / LABELS_CSV).exists():
            png_maps, refused = wafer.read_png_folder(drop)
            maps += png_maps
        elif not maps and any(p.is_file() for p in drop.iterdir()):
            raise DropError(f"drop folder {drop} holds neither .npz files nor {LABELS_CSV} with map PNGs")
    else:
        raise DropError(f"drop {drop} does not exist")
    if not maps and not refused:
        raise EmptyDrop(f"drop {drop} holds no maps")
    return maps, refused


# ---- validation ----------------------------------------------------------------------------


def validate_wafer(month: str, cfg: Config) -> dict[str, Any]:
    """Judge the ingested drop of `month`: quarantine bad maps, accept good ones, DVC-version `accepted/`.

    Raises WaferDropRejected (nothing accepted) when the bad share exceeds cfg.data.max_bad_share.
    Re-validating an accepted month returns the result stored then.
    """
    _require_wafer_line(cfg)
    src = drop_dir(cfg, month)
    if not (src / MAPS_NPZ).exists():
        raise DropError(f"wafer month {month} has not been ingested: {src / MAPS_NPZ} missing")
    repo = versioning.ensure_data_repo(cfg)
    drop_hash = tree_digest(src)
    stored = _stored_result(cfg, month, drop_hash, repo)
    if stored is not None:
        return stored
    maps, refused = load_maps(src / MAPS_NPZ), _read_csv(src / REFUSED_CSV)
    frame = map_facts(maps, refused, _known_ids(cfg, month))
    gx_success, bad = judge_maps(frame, cfg, reports_dir(cfg, month))
    _cross_check(maps, bad, cfg)
    bad_maps = [maps[i] for i in sorted(bad) if i < len(maps)]
    good = [m for i, m in enumerate(maps) if i not in bad]
    prev = _previous_month(cfg, month)
    result = {
        "month": month, "n_rows": len(frame), "n_good": len(good), "n_bad": len(bad),
        "bad": [{"map_id": str(frame.at[i, "map_id"]), "source": str(frame.at[i, "source"]), "reasons": bad[i]}
                for i in sorted(bad)],
        "drift": label_drift(good, load_maps(accepted_root(cfg) / prev / MAPS_NPZ) if prev else [], prev, cfg),
        "dataset_version": None, "accepted_dir": None, "quarantine_dir": str(quarantine_dir(cfg, month)),
        "data_docs_dir": str(reports_dir(cfg, month) / "data_docs"), "gx_success": gx_success, "drop_hash": drop_hash}
    frame.to_csv(reports_dir(cfg, month) / "facts.csv", index=False)
    _quarantine(cfg, month, bad_maps, result["bad"])
    _refuse_if_bad(result, cfg)
    result["accepted_dir"] = str(_accept(cfg, month, good))
    _save_json(reports_dir(cfg, month) / VALIDATION_JSON, result)  # so a rerun can finish the versioning
    result["dataset_version"] = versioning.add_and_push(repo, accepted_root(cfg))
    _write_reports(cfg, result)
    return result


def map_facts(maps: list[WaferMap], refused: list[dict], known: dict[str, str]) -> pd.DataFrame:
    """One row of facts per map (`wafer.facts`) and per refused item, for GX to judge.

    Added to wafer's facts: `row` (GX names failing rows by it), `read` (ok, or why ingest could
    not read the item), `n_other_values` (a number GX can bound) and `accepted_in` (the earlier
    month that already accepted the id, '' if none: a fact, so the suite need not list every id).
    """
    rows = [{**wafer.facts(m), "read": READ_OK} for m in maps]
    rows += [{"map_id": Path(r["source"]).stem, "source": r["source"], "read": r["reason"]} for r in refused]
    frame = pd.DataFrame(rows, columns=["map_id", "source", "label", "rows", "cols", "other_values", "dies", "read"])
    frame.insert(0, "row", range(len(frame)))
    frame["n_other_values"] = [len(v) if isinstance(v, list) else np.nan for v in frame["other_values"]]
    frame["other_values"] = [", ".join(map(str, v[:5])) if isinstance(v, list) else "" for v in frame["other_values"]]
    frame["accepted_in"] = [known.get(i, "") for i in frame["map_id"]]
    return frame


def wafer_expectations(cfg: Config) -> list:
    """The wafer drop suite over `map_facts`; each meta says which check and how to say why
    (a format string over the failing row's facts)."""
    import great_expectations as gx

    E, line = gx.expectations, cfg.line
    return [
        E.ExpectTableRowCountToBeBetween(min_value=1, meta=_meta("not_empty", "drop is empty")),
        E.ExpectColumnValuesToBeInSet(column="read", value_set=[READ_OK], meta=_meta("read", "{read}")),
        E.ExpectColumnValuesToBeBetween(column="n_other_values", max_value=0,
                                        meta=_meta("values", "values other than 0/128/255: {other_values}")),
        E.ExpectColumnValuesToBeBetween(
            column="rows", min_value=line.min_height, max_value=line.max_height,
            meta=_meta("size", f"{{rows:.0f}} rows, expected {line.min_height}..{line.max_height}")),
        E.ExpectColumnValuesToBeBetween(
            column="cols", min_value=line.min_width, max_value=line.max_width,
            meta=_meta("size", f"{{cols:.0f}} cols, expected {line.min_width}..{line.max_width}")),
        E.ExpectColumnValuesToBeInSet(column="label", value_set=list(cfg.data.classes),
                                      meta=_meta("label", "label {label!r} is not one of the line's classes")),
        E.ExpectColumnValuesToBeBetween(column="dies", min_value=MIN_DIES,
                                        meta=_meta("dies", "no die on the wafer (every value 0)")),
        E.ExpectColumnValuesToBeUnique(column="map_id",
                                       meta=_meta("duplicate", "id {map_id} repeats within the drop")),
        E.ExpectColumnValuesToBeInSet(column="accepted_in", value_set=[""],
                                      meta=_meta("seen", "id {map_id} already accepted in month {accepted_in}")),
    ]


def _meta(check: str, reason: str) -> dict:
    return {"check": check, "reason": reason}


def judge_maps(frame: pd.DataFrame, cfg: Config, reports: Path) -> tuple[bool, dict[int, list[str]]]:
    """Run the suite through the GX checkpoint (which writes Data Docs under reports/data_docs).

    Returns GX's overall success and, per failing row, its reasons; the checkpoint result is
    kept as reports/gx_result.json.
    """
    reports.mkdir(parents=True, exist_ok=True)
    result = run_checkpoint(frame, wafer_expectations(cfg), reports / "data_docs")
    bad: dict[int, list[str]] = {}
    for vr in result.run_results.values():
        for r in vr.results:
            meta = r.expectation_config.meta or {}
            for hit in [] if r.success else (r.result or {}).get("unexpected_index_list") or []:
                row = int(hit["row"])
                bad.setdefault(row, []).append(meta.get("reason", r.expectation_config.type).format(
                    **frame.iloc[row].to_dict()))
    _save_json(reports / "gx_result.json", json.loads(json.dumps(result.describe_dict(), default=str)))
    return bool(result.success), dict(sorted(bad.items()))


def _cross_check(maps: list[WaferMap], bad: dict[int, list[str]], cfg: Config) -> None:
    """wafer.check judges the same facts in plain code: a map it refuses that GX passed means the
    suite is wrong, and such a map must never be accepted. (GX refuses more: every copy of a
    repeated id, ids accepted before, items ingest could not read.)"""
    line = cfg.line
    reasons = wafer.check(maps, cfg.data.classes, min(line.min_width, line.min_height),
                          max(line.max_width, line.max_height))
    missed = {i: why for i, why in reasons.items() if i not in bad}
    if missed:
        listing = "; ".join(f"{maps[i].source}: {', '.join(why)}" for i, why in missed.items())
        raise RuntimeError(f"the GX suite passed maps wafer.check refuses (a bug in the suite): {listing}")


def label_drift(current: list[WaferMap], previous: list[WaferMap], previous_month: str | None,
                cfg: Config) -> dict[str, Any]:
    """Label shares of this month's good maps vs the previous accepted month's (validate.share_drift)."""
    prev = shares((m.label for m in previous), cfg.data.classes) if previous else {}
    report = share_drift(shares((m.label for m in current), cfg.data.classes), prev, cfg.data.drift_tolerance,
                         previous_month)
    return {**report, "n_maps": len(current)}


def _known_ids(cfg: Config, month: str) -> dict[str, str]:
    """Ids accepted in earlier months, with the month that accepted them."""
    return {m.map_id: earlier for earlier in accepted_months(cfg) if earlier < month
            for m in load_maps(accepted_root(cfg) / earlier / MAPS_NPZ)}


def _previous_month(cfg: Config, month: str) -> str | None:
    earlier = [m for m in accepted_months(cfg) if m < month]
    return earlier[-1] if earlier else None


def _stored_result(cfg: Config, month: str, drop_hash: str, repo: Path) -> dict[str, Any] | None:
    """An accepted month's stored result (nothing re-accepted or modified); finishes the DVC step if
    the earlier run stopped before it."""
    if not (accepted_root(cfg) / month / MAPS_NPZ).exists():
        return None
    path = reports_dir(cfg, month) / VALIDATION_JSON
    stored = json.loads(path.read_text()) if path.exists() else {}
    if stored.get("drop_hash") != drop_hash or not stored.get("accepted_dir"):
        raise DropError(f"wafer month {month} is already accepted (from a drop other than {drop_hash} or without "
                        f"its validation record {path}); accepted data is never modified")
    if not stored.get("dataset_version"):
        stored["dataset_version"] = versioning.add_and_push(repo, accepted_root(cfg))
        _write_reports(cfg, stored)
    return stored


def _refuse_if_bad(result: dict[str, Any], cfg: Config) -> None:
    """Refuse the whole drop when its bad share exceeds max_bad_share, listing the bad maps."""
    n_rows, n_bad = result["n_rows"], result["n_bad"]
    share = n_bad / n_rows if n_rows else 1.0
    if n_rows and share <= cfg.data.max_bad_share:
        return
    _save_json(reports_dir(cfg, result["month"]) / VALIDATION_JSON, result)
    listing = "\n".join(f"  {b['source']}: {'; '.join(b['reasons'])}" for b in result["bad"][:LISTED_BAD])
    if len(result["bad"]) > LISTED_BAD:
        listing += f"\n  ... and {len(result['bad']) - LISTED_BAD} more"
    raise WaferDropRejected(
        f"wafer drop {result['month']} rejected: {n_bad} of {n_rows} maps bad ({share:.0%} > max_bad_share "
        f"{cfg.data.max_bad_share:.0%}); nothing accepted (see {result['quarantine_dir']}/{REASONS_CSV}). "
        f"Bad maps:\n{listing}", result)


def _quarantine(cfg: Config, month: str, bad_maps: list[WaferMap], bad: list[dict]) -> Path:
    """Replace quarantine/<month> with the bad maps and reasons.csv (refused items have no map)."""
    qdir = quarantine_dir(cfg, month)
    _rmtree(qdir)
    qdir.mkdir(parents=True)
    save_maps(bad_maps, qdir / MAPS_NPZ)
    _write_csv(qdir / REASONS_CSV, REASONS_COLUMNS, [{**b, "reasons": "; ".join(b["reasons"])} for b in bad])
    return qdir


def _accept(cfg: Config, month: str, good: list[WaferMap]) -> Path:
    """Write the good maps to accepted/<month> (built aside, then renamed: a crash leaves no half month)."""
    final = accepted_root(cfg) / month
    staging = wafer_root(cfg) / ".staging" / f"accepted-{month}"
    _rmtree(staging)
    save_maps(good, staging / MAPS_NPZ)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(final)
    return final


def _write_reports(cfg: Config, result: dict[str, Any]) -> None:
    out = reports_dir(cfg, result["month"])
    _save_json(out / VALIDATION_JSON, result)
    drift_table(result["drift"]).to_csv(out / "drift.csv", index=False)
    cfg.paths.dataset_version_file.parent.mkdir(parents=True, exist_ok=True)
    cfg.paths.dataset_version_file.write_text(f"{result['dataset_version']}\n")


# ---- accepted maps and the bundled drops -----------------------------------------------------


def accepted_maps(cfg: Config, months: list[str] | None = None) -> list[WaferMap]:
    """Every accepted map (of `months`, default all), oldest month first."""
    chosen = accepted_months(cfg) if months is None else sorted(months)
    return [m for month in chosen for m in load_maps(accepted_root(cfg) / check_month(month) / MAPS_NPZ)]


def bundled_wafer_drop(month: str, train_npz: str | Path, months: list[str], dest: str | Path) -> Path:
    """The bundled train part's maps that replay in `month` (`wafer.month_of` their id), as an .npz
    drop at dest: the same bytes on every machine and every run."""
    if month not in months:
        raise KeyError(f"no bundled wafer drop for month {month!r}; known: {', '.join(months)}")
    chosen = [m for m in wafer.read_npz(train_npz) if wafer.month_of(m.map_id, months) == month]
    return save_maps(chosen, Path(dest))


# ---- small file helpers --------------------------------------------------------------------


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _save_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))


def _rmtree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
