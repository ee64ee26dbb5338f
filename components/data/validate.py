"""Validate an ingested drop with Great Expectations, quarantine bad rows, accept the rest.

Per-row facts (does the image decode, its size, box extents, classes, ...) are
computed with PIL/pandas; GX expectations then judge them, and the GX result alone
decides which rows are bad, so what Data Docs show is what happened.

On disk, under `<workdir>/data/`:
    quarantine/<month>/<group>/<files>, reasons.csv (id, file, reason)
    accepted/<month>/<group>/<files>, manifest.csv   (accepted/ is DVC-tracked:
                                                      its hash is the dataset version)
    reports/<month>/data_docs/index.html, validation.json, drift.csv, facts.csv
    dataset_version.txt                               (the current dataset version)
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from components.config import Config
from components.data import versioning
from components.data.ingest import MANIFEST, DropError, check_month, drop_path, read_manifest, write_manifest
from components.data.records import Sample, finite
from components.line import LineConfig

REASONS_COLUMNS = ["id", "file", "reason"]
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no usage pings from a pipeline run


class DropRejected(DropError):
    """Too many bad rows (or none at all): nothing from the drop was accepted. `.result` has the details."""

    def __init__(self, message: str, result: ValidationResult | None = None):
        super().__init__(message)
        self.result = result


@dataclass
class ValidationResult:
    month: str
    n_rows: int
    n_good: int
    n_bad: int
    quarantine_dir: str
    accepted_dir: str | None
    dataset_version: str | None
    drift: dict[str, Any]
    gx_result: dict[str, Any]
    data_docs_dir: str
    drop_hash: str | None = None
    bad: list[dict[str, str]] = field(default_factory=list)
    """One entry per (row, reason): id, file, reason, as in reasons.csv."""

    @property
    def drift_table(self) -> pd.DataFrame:
        return drift_table(self.drift)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def accepted_root(cfg: Config) -> Path:
    return cfg.paths.data_dir / "accepted"


def quarantine_path(cfg: Config, month: str) -> Path:
    return cfg.paths.data_dir / "quarantine" / check_month(month)


def reports_path(cfg: Config, month: str) -> Path:
    return cfg.paths.data_dir / "reports" / check_month(month)


def dataset_version(cfg: Config) -> str | None:
    """The current dataset version: the DVC hash of `accepted/` (None before any month is accepted)."""
    return versioning.tracked_hash(versioning.data_repo_root(cfg), accepted_root(cfg))


def accepted_months(cfg: Config) -> list[str]:
    """Months with an accepted manifest, oldest first."""
    root = accepted_root(cfg)
    return sorted(p.parent.name for p in root.glob(f"*/{MANIFEST}")) if root.is_dir() else []


def validate_drop(month: str, cfg: Config) -> ValidationResult:
    """Judge the ingested drop of `month`; quarantine bad rows, accept good ones, DVC-version `accepted/`.

    Raises DropRejected (nothing accepted) when the drop is empty or its bad share
    exceeds cfg.data.max_bad_share. Re-validating an accepted month returns its stored result.
    """
    repo = versioning.ensure_data_repo(cfg)
    src = drop_path(cfg, month)
    if not (src / MANIFEST).exists():
        raise DropError(f"month {month} has not been ingested: {src / MANIFEST} missing")
    drop_hash = versioning.tracked_hash(repo, src)
    previous = _previous_result(cfg, month, drop_hash, repo)
    if previous is not None:
        return previous
    rows = read_manifest(src)
    result, bad = _judge_rows(cfg, month, src, rows)
    result.drop_hash = drop_hash
    good = [r for i, r in enumerate(rows) if i not in {b["row"] for b in bad}]
    result.drift = drift_report(_samples(good), _previous_month_samples(cfg, month), cfg.data.drift_tolerance,
                                _prev_month(cfg, month), cfg.data.classes)
    _quarantine(cfg, month, src, rows, bad)
    _refuse_if_bad(result, cfg, src)
    result.accepted_dir = str(_accept(cfg, month, src, good))
    _save_json(reports_path(cfg, month) / "validation.json", result.to_dict())  # so a rerun can finish the job
    result.dataset_version = versioning.add_and_push(repo, accepted_root(cfg))
    _write_reports(cfg, result)
    return result


def _judge_rows(cfg: Config, month: str, src: Path, rows: list[dict]) -> tuple[ValidationResult, list[dict]]:
    """Facts + GX verdict for the rows of one drop, as a result not yet accepted."""
    known = {s.sample_id: m for m in accepted_months(cfg) if m != month for s in accepted_samples(cfg, m)}
    fmt = rows[0]["format"] if rows else "deeppcb"
    docs = reports_path(cfg, month) / "data_docs"
    facts = row_facts(rows, src, cfg)
    reports_path(cfg, month).mkdir(parents=True, exist_ok=True)
    gx_result, bad = judge(facts, cfg, require_template=templates_required(cfg.line.reference, fmt), known_ids=known,
                           docs_dir=docs)
    facts.to_csv(reports_path(cfg, month) / "facts.csv", index=False)
    n_bad = len({b["row"] for b in bad})
    result = ValidationResult(
        month=month, n_rows=len(rows), n_good=len(rows) - n_bad, n_bad=n_bad,
        quarantine_dir=str(quarantine_path(cfg, month)), accepted_dir=None, dataset_version=None, drift={},
        gx_result=gx_result, data_docs_dir=str(docs), bad=[{k: b[k] for k in REASONS_COLUMNS} for b in bad])
    return result, bad


def _refuse_if_bad(result: ValidationResult, cfg: Config, src: Path) -> None:
    share = result.n_bad / result.n_rows if result.n_rows else 1.0
    if result.n_rows and share <= cfg.data.max_bad_share:
        return
    _save_json(reports_path(cfg, result.month) / "validation.json", result.to_dict())
    if not result.n_rows:
        raise DropRejected(f"drop {result.month} ({src}) is empty: nothing to accept", result)
    listing = "\n".join(f"  {b['file']}: {b['reason']}" for b in result.bad[:30])
    if len(result.bad) > 30:
        listing += f"\n  ... and {len(result.bad) - 30} more (see {result.quarantine_dir}/reasons.csv)"
    raise DropRejected(
        f"drop {result.month} rejected: {result.n_bad} of {result.n_rows} rows bad ({share:.0%} > max_bad_share "
        f"{cfg.data.max_bad_share:.0%}); nothing accepted. Bad files:\n{listing}", result)


def _previous_result(cfg: Config, month: str, drop_hash: str | None, repo: Path) -> ValidationResult | None:
    """Re-validating an accepted month returns the result stored then; nothing is re-accepted or modified.

    If the earlier run stopped before DVC versioned accepted/ (say a failed push), this finishes that step.
    """
    if not (accepted_root(cfg) / month / MANIFEST).exists():
        return None
    stored = reports_path(cfg, month) / "validation.json"
    data = json.loads(stored.read_text()) if stored.exists() else {}
    if data.get("drop_hash") != drop_hash or not data.get("accepted_dir"):
        raise DropError(f"month {month} is already accepted (from a drop other than {drop_hash} or without its "
                        f"validation record {stored}); accepted data is never modified")
    result = ValidationResult(**data)
    if not result.dataset_version:
        result.dataset_version = versioning.add_and_push(repo, accepted_root(cfg))
        _write_reports(cfg, result)
    return result


def _quarantine(cfg: Config, month: str, src: Path, rows: list[dict], bad: list[dict]) -> Path:
    """Replace quarantine/<month> with copies of the bad rows' files and reasons.csv."""
    qdir = quarantine_path(cfg, month)
    if qdir.exists():
        shutil.rmtree(qdir)
    qdir.mkdir(parents=True)
    for i in sorted({b["row"] for b in bad}):
        _copy_row_files(rows[i], src, qdir)
    with open(qdir / "reasons.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=REASONS_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(bad)
    return qdir


def _accept(cfg: Config, month: str, src: Path, good: list[dict]) -> Path:
    """Copy good rows into accepted/<month> (built aside, then renamed, so a crash leaves no half month)."""
    final = accepted_root(cfg) / month
    staging = cfg.paths.data_dir / ".staging" / f"accepted-{month}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for row in good:
        _copy_row_files(row, src, staging)
    write_manifest([{**r, "month": month} for r in good], staging / MANIFEST)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(final)
    return final


def _copy_row_files(row: dict, src: Path, dest: Path) -> None:
    test = Path(row["test_path"])
    files = [test, test.with_name(test.name[: -len("_test.jpg")] + ".txt")]
    if row.get("template_path"):
        files.append(Path(row["template_path"]))
    for rel in files:
        if (src / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, dest / rel)


def _write_reports(cfg: Config, result: ValidationResult) -> None:
    out = reports_path(cfg, result.month)
    _save_json(out / "validation.json", result.to_dict())
    result.drift_table.to_csv(out / "drift.csv", index=False)
    cfg.paths.dataset_version_file.write_text(f"{result.dataset_version}\n")


def _save_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))


# ---- accepted samples and drift -------------------------------------------------------------


def _samples(rows: list[dict], base: Path | None = None) -> list[Sample]:
    out = []
    for row in rows:
        s = Sample.from_row(row)
        if base is not None:
            s.test_path = str(base / s.test_path)
            s.template_path = str(base / s.template_path) if s.template_path else None
        out.append(s)
    return out


def accepted_samples(cfg: Config, month: str) -> list[Sample]:
    """Accepted samples of one month, with absolute paths."""
    folder = accepted_root(cfg) / month
    return _samples(read_manifest(folder), folder)


def _prev_month(cfg: Config, month: str) -> str | None:
    earlier = [m for m in accepted_months(cfg) if m < month]
    return earlier[-1] if earlier else None


def _previous_month_samples(cfg: Config, month: str) -> list[Sample]:
    prev = _prev_month(cfg, month)
    return accepted_samples(cfg, prev) if prev else []


def shares(names: Iterable[str], classes: tuple[str, ...]) -> dict[str, float]:
    """Share of each class among names (a box's class, a map's label); names outside classes count too."""
    counts = {c: 0 for c in classes}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    total = sum(counts.values())
    return {c: (n / total if total else 0.0) for c, n in counts.items()}


def class_shares(samples: list[Sample], classes: tuple[str, ...]) -> dict[str, float]:
    return shares((b.cls for s in samples for b in s.boxes), classes)


def share_drift(current: dict[str, float], previous: dict[str, float], tolerance: float,
                previous_month: str | None) -> dict[str, Any]:
    """Per-class share now vs the previous accepted month (previous empty: none yet); a warning,
    never a stop. Every line's drift report is this table."""
    table = {}
    for c, share in current.items():
        delta = share - previous[c] if c in previous else None
        drifted = delta is not None and abs(delta) > tolerance
        table[c] = {"previous": previous.get(c), "current": share, "delta": delta, "drifted": drifted}
    drifted = [c for c, v in table.items() if v["drifted"]]
    return {"previous_month": previous_month if previous else None, "tolerance": tolerance, "classes": table,
            "drifted": drifted, "warning": bool(drifted)}


def drift_report(current: list[Sample], previous: list[Sample], tolerance: float,
                 previous_month: str | None, classes: tuple[str, ...]) -> dict[str, Any]:
    """Per-class share of boxes now vs the previous accepted month; a warning, never a stop."""
    prev = class_shares(previous, classes) if previous else {}
    report = share_drift(class_shares(current, classes), prev, tolerance, previous_month)
    return {**report, "n_boxes": sum(len(s.boxes) for s in current)}


def drift_table(report: dict[str, Any]) -> pd.DataFrame:
    """The drift report as one row per class."""
    rows = [{"class": c, **v} for c, v in (report.get("classes") or {}).items()]
    return pd.DataFrame(rows, columns=["class", "previous", "current", "delta", "drifted"])


# ---- per-row facts ---------------------------------------------------------------------------

FACT_COLUMNS = ["row", "sample_id", "group", "format", "test_file", "template_file", "annotation_file",
                "image_status", "width", "height", "has_template", "template_status", "annotation_status",
                "n_boxes", "box_x_min", "box_y_min", "box_x_max", "box_y_max", "box_min_w", "box_min_h", "classes",
                "box_x_past", "box_y_past"]
_NUMERIC = ["width", "height", "box_x_min", "box_y_min", "box_x_max", "box_y_max", "box_min_w", "box_min_h"]
PAST_EDGE = {"box_x_past": ("box_x_max", "width", "right"), "box_y_past": ("box_y_max", "height", "bottom")}
"""How far, in pixels, a row's boxes reach past its own image's edge (its far box side minus the
image's side; > 0 is out of bounds): images differ in size within the line's range."""


def decode_image(path: Path) -> tuple[str, tuple[int, int] | None]:
    """('ok', (w, h)) when the file decodes completely; else a status saying why not."""
    from PIL import Image, ImageFile

    if not path.is_file():
        return "missing", None
    saved, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False  # a truncated scan must fail
    try:
        with Image.open(path) as im:
            im.load()
            return "ok", im.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"does not decode ({type(exc).__name__}: {str(exc).replace(str(path), path.name)})", None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved


def row_facts(rows: list[dict], src: Path, cfg: Config) -> pd.DataFrame:
    """One row of plain facts per manifest row; judging them is left to GX."""
    facts = pd.DataFrame([_row_fact(i, r, src, cfg) for i, r in enumerate(rows)], columns=FACT_COLUMNS)
    for col in _NUMERIC:
        facts[col] = pd.to_numeric(facts[col], errors="coerce").astype("float64")
    for col, (far, side, _) in PAST_EDGE.items():
        facts[col] = facts[far] - facts[side]  # NaN without boxes or a decoded image: judged elsewhere
    return facts


def _row_fact(i: int, row: dict, src: Path, cfg: Config) -> dict:
    from components.data.adapters import deeppcb_annotation_error

    test_rel = row["test_path"]
    stem = test_rel[: -len("_test.jpg")]
    status, size = decode_image(src / test_rel)
    temp_rel = row.get("template_path") or ""
    fact = {"row": i, "sample_id": row["sample_id"], "group": row["group"], "format": row.get("format", ""),
            "test_file": test_rel, "template_file": temp_rel or f"{stem}_temp.jpg", "annotation_file": f"{stem}.txt",
            "image_status": status, "width": size[0] if size else None, "height": size[1] if size else None,
            "has_template": bool(temp_rel), "template_status": _template_status(src, temp_rel, size)}
    ann = row.get("annotation_error") or ""
    if not ann and row.get("format") == "deeppcb":
        ann = deeppcb_annotation_error(src / test_rel, cfg.data.classes)  # re-read: the copy must still parse
    try:
        boxes = Sample.from_row(row).boxes
        for b in boxes:
            finite([b.x1, b.y1, b.x2, b.y2], f"{b.cls} box")
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        # GX's between-checks skip NaN, so a non-finite box that got this far must fail here
        boxes, ann = [], ann or f"boxes column does not parse: {exc}"
    fact["annotation_status"] = ann or "ok"
    return {**fact, **_box_facts(boxes)}


def _template_status(src: Path, temp_rel: str, test_size: tuple[int, int] | None) -> str:
    if not temp_rel:
        return "missing"
    status, size = decode_image(src / temp_rel)
    if status == "ok" and test_size and size != test_size:
        return f"size {size[0]}x{size[1]} differs from test image {test_size[0]}x{test_size[1]}"
    return status


def _box_facts(boxes: list) -> dict:
    if not boxes:
        return {"n_boxes": 0, "classes": ""}
    return {"n_boxes": len(boxes), "box_x_min": min(b.x1 for b in boxes), "box_y_min": min(b.y1 for b in boxes),
            "box_x_max": max(b.x2 for b in boxes), "box_y_max": max(b.y2 for b in boxes),
            "box_min_w": min(b.x2 - b.x1 for b in boxes), "box_min_h": min(b.y2 - b.y1 for b in boxes),
            "classes": "|".join(sorted({b.cls for b in boxes}))}


# ---- GX judgement ----------------------------------------------------------------------------


def _check(name: str, role: str, reason: str) -> dict:
    """meta of an expectation: which check, which file of the sample it blames, how to say why.

    reason is a format string over {value} (the offending fact), {column}, {unknown}
    (classes outside the vocabulary) and {seen} (the month an id was accepted in).
    """
    return {"check": name, "file": role, "reason": reason}


def templates_required(reference: str, fmt: str) -> bool:
    """Whether every row of a drop must have its template, by the line's reference mode: always
    (required), never (none), or where the format pairs each board with one (optional: DeepPCB
    does, VOC and COCO carry no template)."""
    return reference == "required" or (reference == "optional" and fmt == "deeppcb")


def expectations(cfg: Config, require_template: bool, known_ids: dict[str, str] | set[str]) -> list:
    """The drop suite: row checks on the facts, plus the table must not be empty."""
    import great_expectations as gx

    E = gx.expectations
    templates_ok = ["ok"] if require_template else ["ok", "missing"]  # VOC/COCO carry no template
    return [
        E.ExpectTableRowCountToBeBetween(min_value=1, meta=_check("not_empty", "", "drop is empty")),
        E.ExpectColumnValuesToBeInSet(column="image_status", value_set=["ok"],
                                      meta=_check("image", "test", "test image {value}")),
        *_size_checks(E, cfg.line),
        E.ExpectColumnValuesToBeInSet(column="template_status", value_set=templates_ok,
                                      meta=_check("template", "template", "template {value}")),
        E.ExpectColumnValuesToBeInSet(column="annotation_status", value_set=["ok"],
                                      meta=_check("annotation", "annotation", "{value}")),
        *_box_checks(E),
        E.ExpectColumnValuesToMatchRegex(column="classes", regex=_vocabulary_regex(cfg.data.classes),
                                         meta=_check("class", "annotation", "unknown class {unknown}")),
        E.ExpectColumnValuesToBeUnique(column="sample_id",
                                       meta=_check("duplicate", "test", "duplicate id {value} within the drop")),
        E.ExpectColumnValuesToNotBeInSet(column="sample_id", value_set=sorted(known_ids),
                                         meta=_check("seen", "test", "id {value} already accepted in month {seen}")),
    ]


def _vocabulary_regex(classes: tuple[str, ...]) -> str:
    """Matches '' or 'a|b|...' where every name is in the vocabulary (the `classes` fact)."""
    import re

    name = "(?:" + "|".join(re.escape(c) for c in classes) + ")"
    return rf"^(?:{name}(?:\|{name})*)?$"


def _size_checks(E, line: LineConfig) -> list:
    """Image width and height within the line's range (one size when min = max)."""
    out = []
    for axis in ("width", "height"):
        lo, hi = getattr(line, f"min_{axis}"), getattr(line, f"max_{axis}")
        reason = f"image {{column}} {{value:g}} px, expected {lo if lo == hi else f'{lo}-{hi}'}"
        out.append(E.ExpectColumnValuesToBeBetween(column=axis, min_value=lo, max_value=hi,
                                                   meta=_check("size", "test", reason)))
    return out


def _box_checks(E) -> list:
    """Boxes inside their own image, and x1 < x2, y1 < y2 for every box (NaN = no boxes, not judged)."""
    bounds = _check("bounds", "annotation", "box out of bounds: {column} = {value:g}")
    out = [E.ExpectColumnValuesToBeBetween(column=c, min_value=0, meta=bounds) for c in ("box_x_min", "box_y_min")]
    for c, (far, side, edge) in PAST_EDGE.items():
        reason = f"box out of bounds: {far} is {{value:g}} px past the image's {edge} edge (its {side})"
        out.append(E.ExpectColumnValuesToBeBetween(column=c, max_value=0, meta=_check("bounds", "annotation", reason)))
    for c, axis in (("box_min_w", "x"), ("box_min_h", "y")):
        reason = f"inverted box: {axis}2 <= {axis}1 ({{column}} = {{value:g}})"
        out.append(E.ExpectColumnValuesToBeBetween(column=c, min_value=0, strict_min=True,
                                                   meta=_check("inverted", "annotation", reason)))
    return out


def judge(facts: pd.DataFrame, cfg: Config, require_template: bool, known_ids: dict[str, str],
          docs_dir: Path) -> tuple[dict[str, Any], list[dict]]:
    """Run the suite on the facts through a GX checkpoint (which also builds Data Docs into docs_dir).

    known_ids maps ids accepted in other months to their month. Returns the JSON-able
    checkpoint result and one entry per (bad row, reason).
    """
    result = run_checkpoint(facts, expectations(cfg, require_template, known_ids), docs_dir)
    bad = []
    for vr in result.run_results.values():
        for r in vr.results:
            if not r.success:
                bad += _blame(r, facts, cfg, known_ids)
    bad.sort(key=lambda b: (b["row"], b["check"]))
    return json.loads(json.dumps(result.describe_dict(), default=str)), bad


def run_checkpoint(facts: pd.DataFrame, suite_items: list, docs_dir: Path):
    """Ephemeral context -> pandas batch -> suite -> checkpoint that also writes Data Docs."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import DataContextConfig, InMemoryStoreBackendDefaults, ProgressBarsConfig

    if docs_dir.exists():
        shutil.rmtree(docs_dir)
    site = {"class_name": "SiteBuilder", "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(docs_dir.resolve())}}
    # In-memory stores; the only Data Docs site is ours (no default temp site).
    ctx = gx.get_context(mode="ephemeral", project_config=DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites={"drop": site}, progress_bars=ProgressBarsConfig(globally=False)))
    asset = ctx.data_sources.add_pandas("drop").add_dataframe_asset("rows")
    batch = asset.add_batch_definition_whole_dataframe("all")
    suite = ctx.suites.add(gx.ExpectationSuite(name="drop_rows"))
    for item in suite_items:
        suite.add_expectation(item)
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name="drop_rows", data=batch, suite=suite))
    checkpoint = ctx.checkpoints.add(gx.Checkpoint(
        name="drop", validation_definitions=[vd],
        actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["drop"])],
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["row"]}))
    return checkpoint.run(batch_parameters={"dataframe": facts})


def _blame(r, facts: pd.DataFrame, cfg: Config, known_ids: dict[str, str]) -> list[dict]:
    """Turn one failed expectation into (row, id, file, reason) entries."""
    meta, column = r.expectation_config.meta or {}, r.expectation_config.kwargs.get("column")
    out = []
    for hit in (r.result or {}).get("unexpected_index_list") or []:
        fact = facts.iloc[int(hit["row"])]
        value = fact[column]
        unknown = ", ".join(c for c in str(fact["classes"]).split("|") if c and c not in cfg.data.classes)
        file = fact[f"{meta.get('file')}_file"] if meta.get("file") else fact["test_file"]
        reason = meta.get("reason", r.expectation_config.type).format(
            value=value, column=column, unknown=unknown, seen=known_ids.get(str(value), "?"))
        out.append({"row": int(hit["row"]), "id": fact["sample_id"], "file": file,
                    "check": meta.get("check", ""), "reason": reason})
    return out
