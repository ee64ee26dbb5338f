"""`defectqa`: the command line for the ML / quality engineer and the inspector.

Heavy libraries are imported inside each command so `--help` stays instant.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from components.line import DEFAULT_LINE, WAFER_KIND
from components.pipeline import STAGES

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
# The temporary Prefect server can take over 20 s to start on a busy 2-core machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

app = typer.Typer(help="Defect-inspection VLM: retrain monthly, check, promote, ask.", no_args_is_help=True,
                  pretty_exceptions_enable=False)

ParamsOpt = Annotated[Path, typer.Option("--params", help="YAML file of config overrides (also read by DVC).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override one config value, e.g. --set train.spatial_steps=200. "
                                                                "Repeatable.")]
LineOpt = Annotated[str, typer.Option("--line", help="Product line: lines/<LINE>.yaml (or a path to a line file): its "
                                                    "classes and their words, image sizes, reference mode, gate "
                                                    "thresholds and registered model.")]
MapOpt = Annotated[list[str] | None, typer.Option("--map", help="Rename a drop's class at ingest, old=new (e.g. "
                                                                "Scratch=scratches). Repeatable; the same as --set "
                                                                "data.class_map=old=new,...")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="models:/defect-vlm@champion (default), @challenger, "
                                                              "models:/defect-vlm/3, or a model folder.")]


def _with_map(sets: list[str] | None, renames: list[str] | None) -> list[str]:
    """--set values plus the --map renames as one data.class_map override."""
    return [*(sets or []), *([f"data.class_map={','.join(renames)}"] if renames else [])]


def _cfg(params: Path, sets: list[str] | None, line: str = DEFAULT_LINE):
    """The one config every command runs on: defaults < the line's file < params.yaml < --set."""
    from components import config

    try:
        cfg = config.load(params, sets, line)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    os.environ.setdefault("PREFECT_HOME", str(cfg.paths.root / "prefect"))
    return cfg


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _model_dir(cfg, uri: str | None) -> Path:
    from components.registry import registry

    try:
        return registry.resolve(cfg, uri or f"models:/{cfg.registered_model}@champion")
    except (LookupError, FileNotFoundError) as exc:
        _fail(f"{exc}\n(run `defectqa retrain` first, or pick a version: `defectqa models`)")


def _model_and_samples(cfg, model: str | None, data: Path, max_images: int):
    """The model folder and the boards of an evaluation folder (at most max_images: 0 keeps
    eval.max_images), or a clear error naming what is wrong."""
    from components.evaluation.run import samples_of

    cfg.eval.max_images = max_images or cfg.eval.max_images
    model_dir = _model_dir(cfg, model)
    try:
        return model_dir, samples_of(data, cfg)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))


def _drop_and_month(cfg, drop: Path | None, month: str | None, bundled_month: str | None, drop_arg: str):
    """The drop folder and month a command works on: those given, or a bundled month's drop
    (written under the workdir), named by its month unless --month says otherwise."""
    if bundled_month and cfg.line.kind == WAFER_KIND:
        from components.data.wafer_drop import WAFER_MONTHS, bundled_wafer_drop

        month = month or bundled_month
        if bundled_month not in WAFER_MONTHS:
            _fail(f"no bundled wafer month {bundled_month!r}; known: {', '.join(WAFER_MONTHS)}")
        drop = bundled_wafer_drop(bundled_month, cfg.wafer.bundled_train, WAFER_MONTHS,
                                  cfg.paths.area / "bundled-drops" / f"{bundled_month}.npz")
    elif bundled_month:
        from components.data.drops import materialise_drop

        month = month or bundled_month
        drop = materialise_drop(bundled_month, cfg.paths.bundled_data, cfg.paths.root / "bundled-drops" / bundled_month)
    if drop is None or month is None:
        _fail(f"give {drop_arg} --month YYYY-MM, or --bundled-month YYYY-MM")
    return drop, month


@app.command()
def retrain(
    drop: Annotated[Path | None, typer.Option(help="Folder of this month's drop (DeepPCB, Pascal VOC or COCO layout; "
                                                   "--line wafer: an .npz or a folder of map PNGs with labels.csv).")] = None,
    month: Annotated[str | None, typer.Option(help="Month label of the drop, YYYY-MM.")] = None,
    bundled_month: Annotated[str | None, typer.Option(help="Replay a month of the bundled data (2026-01, 2026-02, "
                                                           "2026-03): DeepPCB groups, or with --line wafer a share of "
                                                           "WM-811K's train part.")] = None,
    force: Annotated[bool, typer.Option(help="Train the month again even if a version is registered for it.")] = False,
    params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None, line: LineOpt = DEFAULT_LINE, map_: MapOpt = None,
):
    """Run the monthly retraining flow: validate, version, train (SFT, DPO), quantize, evaluate, gate, register."""
    set_ = _with_map(set_, map_)
    cfg = _cfg(params, set_, line)
    drop, month = _drop_and_month(cfg, drop, month, bundled_month, "--drop DIR")
    from flows.monthly_retrain import monthly_retrain

    summary = monthly_retrain(str(drop), month, list(set_ or []), str(params), force, line)
    _print_summary(summary, cfg)


def _print_summary(summary: dict, cfg) -> None:
    if summary["status"] != "trained":
        version = f" (version {summary['model_version']})" if summary.get("model_version") else ""
        typer.echo(f"{summary['month']}: {summary['status']}{version}; nothing trained.")
        return
    names = list(summary["metrics"])
    from components.evaluation.columns import COLUMNS_OF_KIND

    typer.echo("\n| metric | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for c in COLUMNS_OF_KIND[cfg.line.kind]:
        typer.echo(f"| {c.key} | " + " | ".join(c.cell(summary["metrics"][n].get(c.key), 4, "-") for n in names) + " |")
    verdict = "PASSED" if summary["gate_passed"] else "FAILED"
    judged = "fp32 candidate, as served" if cfg.line.kind == WAFER_KIND else "int8 candidate"
    typer.echo(f"\nGate {verdict} (judged: {judged}). {summary['gate']}")
    where = "promoted to @champion" if summary["promoted"] else "left as @challenger (champion unchanged)"
    typer.echo(f"Model: {cfg.registered_model} version {summary['model_version']} {where}.")
    typer.echo(f"Dataset version (DVC): {summary['dataset_version']}; MLflow run {summary['mlflow_run_id']}.")


@app.command()
def deploy(
    pool: Annotated[str, typer.Option(help="Prefect work pool (type process) whose worker runs the flow.")] = "defectqa",
    name: Annotated[str, typer.Option(help="Deployment name.")] = "monthly",
    params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None, line: LineOpt = DEFAULT_LINE,
):
    """Register the monthly deployment (02:00 UTC on the 1st, one run at a time) on a Prefect server."""
    from flows.deploy import CRON, TIMEZONE, deploy as run

    if not os.environ.get("PREFECT_API_URL"):
        _fail("PREFECT_API_URL is not set: a deployment lives on a Prefect server (make stack-up prints it)")
    deployment_id = run(pool, name, str(params), list(set_ or []), line=line)
    typer.echo(f"deployment monthly_retrain/{name} ({deployment_id}) on pool {pool!r}: cron {CRON!r} {TIMEZONE}, "
               "concurrency 1; drops go to <workdir>/incoming/<YYYY-MM>/")


@app.command()
def ingest(
    drop: Annotated[Path | None, typer.Argument(help="Drop folder (DeepPCB, Pascal VOC XML or COCO JSON).")] = None,
    month: Annotated[str | None, typer.Option(help="Month label, YYYY-MM.")] = None,
    bundled_month: Annotated[str | None, typer.Option(help="Ingest a month of the bundled DeepPCB data instead "
                                                           "(2026-01, 2026-02, 2026-03).")] = None,
    params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None, line: LineOpt = DEFAULT_LINE, map_: MapOpt = None,
):
    """Copy a drop into the data area and version it with DVC (then `defectqa validate --month`)."""
    from components.data.ingest import DropError, ingest as run

    cfg = _cfg(params, _with_map(set_, map_), line)
    drop, month = _drop_and_month(cfg, drop, month, bundled_month, "DROP")
    try:
        res = run(drop, month, cfg)
    except (DropError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(json.dumps(res.__dict__))


@app.command()
def validate(
    month: Annotated[str, typer.Option(help="An ingested month to validate.")],
    params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None, line: LineOpt = DEFAULT_LINE,
):
    """Great Expectations checks of an ingested drop: quarantine bad rows, accept good ones."""
    from components.data.ingest import DropError
    from components.data.validate import validate_drop

    cfg = _cfg(params, set_, line)
    try:
        res = validate_drop(month, cfg)
    except DropError as exc:
        _fail(str(exc))
    typer.echo(res.drift_table.to_string(index=False))
    typer.echo(json.dumps({k: v for k, v in res.to_dict().items() if k not in ("gx_result", "drift")}, default=str))


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option(help="A folder in DeepPCB layout (list file optional; unseen boards welcome), "
                                            "or a Pascal VOC / COCO drop (a line without templates).")],
    model: ModelOpt = None,
    export: Annotated[Path | None, typer.Option(help="Write detections in DeepPCB result format here.")] = None,
    report: Annotated[Path, typer.Option(help="Folder for report.html and metrics.json.")] = Path(".defectqa/reports/latest"),
    max_images: Annotated[int, typer.Option(help="Evaluate only the first N boards (0 = all).")] = 0,
    no_template: Annotated[bool, typer.Option("--no-template", help="The model sees each board alone (templates are still asked "
                                                                    "about as defect-free boards).")] = False,
    robustness: Annotated[bool, typer.Option("--robustness", help="Also evaluate under Gaussian noise, blur, brightness and "
                                                                  "JPEG (severities: eval.robust_*).")] = False,
    blur_check: Annotated[bool | None, typer.Option("--blur-check/--no-blur-check",
                                                    help="Keep only defects also found on a blurred copy (eval.blur_check_*); "
                                                         "~0.17 s more per board here. "
                                                         "Default: as served (serve.blur_check, off).")] = None,
    params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None, line: LineOpt = DEFAULT_LINE,
):
    """Ask the model about every board and template of a folder; print the metrics as a JSON line.
    --line wafer: every map of an .npz (or a folder of map PNGs with labels.csv) is asked its pattern
    and one other question, in wordings training never saw; --export writes index,label,confidence."""
    from components.evaluation.run import evaluate_model, json_line

    cfg = _cfg(params, set_, line)
    if cfg.line.kind == WAFER_KIND:
        _evaluate_wafer(cfg, model, data, export, report, max_images)
        return
    model_dir, samples = _model_and_samples(cfg, model, data, max_images)
    metrics = evaluate_model(model_dir, samples, cfg, report, str(model or "champion"), export=export,
                             templates_as_input=not no_template, robustness=robustness, blur_check=blur_check)
    typer.echo(f"report: {report / 'report.html'}" + (f"; export: {export}" if export else ""), err=True)
    typer.echo(json_line(metrics))


def _wafer_maps(data: Path, max_maps: int = 0) -> list:
    """The labelled maps of an .npz or of a folder of map PNGs with labels.csv (a row that cannot
    be read fails the command, naming it); the first max_maps (0: all)."""
    from components.data.wafer import read_npz, read_png_folder

    try:
        if data.is_file():
            maps = read_npz(data)
        else:
            maps, bad = read_png_folder(data)
            if bad:
                _fail(f"{data}: {len(bad)} map(s) could not be read, e.g. {bad[0][0]}: {bad[0][1]}")
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    return maps[:max_maps] if max_maps else maps


def _evaluate_wafer(cfg, model: str | None, data: Path, export: Path | None, report: Path, max_maps: int) -> None:
    from components.evaluation.run import evaluate_wafer_model, json_line

    maps = _wafer_maps(data, max_maps)
    model_dir = _model_dir(cfg, model)
    try:
        metrics = evaluate_wafer_model(model_dir, maps, cfg, report, str(model or "champion"), export=export)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(f"report: {report / 'report.html'}" + (f"; export: {export}" if export else ""), err=True)
    typer.echo(json_line(metrics))


@app.command()
def misses(
    data: Annotated[Path, typer.Option(help="A folder in DeepPCB layout, or a Pascal VOC / COCO drop.")],
    model: ModelOpt = None,
    out: Annotated[Path | None, typer.Option(help="Also write the report as misses.json here.")] = None,
    max_images: Annotated[int, typer.Option(help="Only the first N boards (0 = all).")] = 0,
    no_template: Annotated[bool, typer.Option("--no-template", help="The model sees each board alone.")] = False,
    params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None, line: LineOpt = DEFAULT_LINE,
):
    """Where the describe-all answers' missed defects are lost (not proposed, dropped or misnamed by the
    refiner, left out of the answer), by class, size, neighbours and contrast."""
    from components.evaluation.run import miss_report

    cfg = _cfg(params, set_, line)
    model_dir, samples = _model_and_samples(cfg, model, data, max_images)
    text = miss_report(model_dir, samples, cfg, out, templates_as_input=not no_template)
    typer.echo(text)


@app.command()
def crossval(
    group: Annotated[list[str] | None, typer.Option("--group", help="A group to hold out (repeatable); default: every "
                                                                    "accepted group.")] = None,
    max_minutes: Annotated[float, typer.Option(help="Start no fold that would end past this many minutes "
                                                    "(0: no limit).")] = 0.0,
    params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None, line: LineOpt = DEFAULT_LINE,
):
    """Leave-one-group-out over the accepted data: train on the other groups, evaluate and gate-judge
    each held-out group; a table per group (<workdir>/crossval/<dataset version>/summary.md)."""
    import shlex

    cfg = _cfg(params, set_, line)
    from flows.crossval import crossval_flow

    args = [a for g in group or [] for a in ("--group", g)] + (["--max-minutes", f"{max_minutes:g}"] if max_minutes else [])
    args += [a for s in set_ or [] for a in ("--set", s)] + (["--line", line] if line != DEFAULT_LINE else [])
    try:
        result = crossval_flow(list(group or []), list(set_ or []), str(params), line, max_minutes,
                               shlex.join(["defectqa", "crossval", *args]))
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(f"summary: {result['out']}/summary.md ({cfg.paths.root})", err=True)


@app.command()
def decisions(
    data: Annotated[Path, typer.Option(help="A folder in DeepPCB layout: boards the model never trained on.")],
    model: ModelOpt = None,
    max_images: Annotated[int, typer.Option(help="Only the first N boards (0 = all).")] = 20,
    params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None, line: LineOpt = DEFAULT_LINE,
):
    """Per question kind: the language model's reading and per-region decision accuracy, teacher-forced and free."""
    from components.evaluation.run import samples_of
    from components.model.inference import Inspector
    from components.train.decisions import measure

    cfg = _cfg(params, set_, line)
    try:
        samples = samples_of(data, cfg)[: max_images or None]
        inspector = Inspector.load(_model_dir(cfg, model))
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    for kind, figures in measure(inspector, samples, cfg).items():
        typer.echo(json.dumps({"kind": kind, **figures}))


@app.command()
def ablate(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder, <workdir>/runs/<dataset version>-<config hash>.")],
    data: Annotated[Path | None, typer.Option(help="DeepPCB-layout folder holding the held-out groups "
                                                   "(default: paths.bundled_data).")] = None,
    out: Annotated[Path, typer.Option(help="Markdown file to write the results to.")] = Path("docs/RESULTS.md"),
    max_images: Annotated[int, typer.Option(help="Evaluate only the first N held-out boards (0 = all).")] = 0,
    robustness: Annotated[bool, typer.Option(help="Also evaluate the served model under noise, blur, brightness and JPEG "
                                                  "(~4 evaluations more).")] = True,
    params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None, line: LineOpt = DEFAULT_LINE,
):
    """Evaluate each stage's model (SFT, +DPO, +calibration, int8) and options (blur check, no template, ...) on the
    held-out groups; write a results table."""
    from components.evaluation.ablate import ablate as run, render_results, served_robustness, write_results

    cfg = _cfg(params, set_, line)
    cfg.eval.max_images = max_images or cfg.eval.max_images
    data = data or Path(cfg.paths.bundled_data)
    if not run_dir.is_dir():
        _fail(f"{run_dir}: no such run folder")
    try:
        results, samples = run(run_dir, data, cfg)
        robust = served_robustness(run_dir, samples, cfg) if robustness else None
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    import shlex

    command = shlex.join(["defectqa", "ablate", str(run_dir), "--data", str(data), "--out", str(out),
                          *(["--max-images", str(max_images)] if max_images else []),
                          *([] if robustness else ["--no-robustness"]), "--params", str(params),
                          *(["--line", line] if line != DEFAULT_LINE else []),
                          *[a for s in set_ or [] for a in ("--set", s)]])
    write_results(out, render_results(results, samples, cfg, command, run_dir, data, robust=robust))
    typer.echo(f"results: {out}", err=True)
    for r in results:
        typer.echo(json.dumps(r))


@app.command()
def ask(
    image: Annotated[Path, typer.Argument(help="Board image to inspect (--line wafer: a map PNG, or an .npz drop with "
                                               "--index).")],
    question: Annotated[str, typer.Argument(help='Plain-language question, e.g. "Where is the short circuit?"')],
    template: Annotated[Path | None, typer.Option(help="The board's aligned defect-free template (recommended).")] = None,
    index: Annotated[int | None, typer.Option(help="--line wafer: the map of an .npz drop to ask about (0-based).")] = None,
    model: ModelOpt = None,
    params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None, line: LineOpt = DEFAULT_LINE,
):
    """Answer a question about one board: each defect's class, box, centre, confidence, or 'none found'
    (--line wafer: about one bin map: its pattern, where the failing dies are, how many, causes to check)."""
    from components.model.blur_check import load_inspector

    cfg = _cfg(params, set_, line)
    for p in (image, template):
        if p is not None and not p.is_file():
            _fail(f"{p}: no such image file")
    if cfg.line.kind == WAFER_KIND:
        typer.echo(json.dumps(_ask_wafer(cfg, model, image, index, question), indent=2))
        return
    inspector = load_inspector(_model_dir(cfg, model), cfg)
    try:
        result = inspector.ask(image, question, template)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    typer.echo(json.dumps(result.to_dict(), indent=2))


def _ask_wafer(cfg, model: str | None, path: Path, index: int | None, question: str) -> dict:
    """One map (a PNG, or map `index` of an .npz) asked one question."""
    from components.data.wafer import read_map_image, read_npz
    from components.model.wafer_inspector import WaferInspector

    try:
        if path.suffix == ".npz":
            maps = read_npz(path)
            if index is None or not 0 <= index < len(maps):
                _fail(f"{path}: give --index 0..{len(maps) - 1} (the map to ask about)")
            grid = maps[index].grid
        else:
            grid = read_map_image(path)
        return WaferInspector.load(_model_dir(cfg, model)).ask(grid, question)
    except (ValueError, OSError) as exc:
        _fail(f"{path}: {exc}")


@app.command()
def promote(version: Annotated[str, typer.Argument(help="Model version to make champion.")],
            params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None, line: LineOpt = DEFAULT_LINE):
    """Make a version the champion by hand (the previous champion is remembered for rollback)."""
    from components.registry import registry

    cfg = _cfg(params, set_, line)
    try:
        prev = registry.promote(cfg, version)
    except LookupError as exc:
        _fail(str(exc))
    typer.echo(f"{cfg.registered_model} v{version} is now @champion (was: {prev or 'none'})")


@app.command()
def rollback(params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None, line: LineOpt = DEFAULT_LINE):
    """Move @champion back to the previous champion."""
    from components.registry import registry

    cfg = _cfg(params, set_, line)
    try:
        version = registry.rollback(cfg)
    except LookupError as exc:
        _fail(str(exc))
    typer.echo(f"{cfg.registered_model} @champion is back on v{version}")


@app.command()
def models(params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None, line: LineOpt = DEFAULT_LINE):
    """List registered versions with their aliases, dataset version and key metrics."""
    from components.registry import registry

    cfg = _cfg(params, set_, line)
    rows = registry.list_versions(cfg)
    if not rows:
        typer.echo(f"no versions of {cfg.registered_model} yet: run `defectqa retrain`")
        return
    typer.echo(f"{cfg.registered_model} (line {cfg.line.name}):")
    typer.echo(f"{'version':>7}  {'aliases':<22} {'created':<20} {'dataset':<14} f1     halluc  rmse_px gate")
    for r in rows:
        m = r.get("metrics", {})
        typer.echo(f"{r['version']:>7}  {','.join(r['aliases']) or '-':<22} {str(r['created'])[:19]:<20} "
                   f"{str(r.get('dataset_version', ''))[:12]:<14} {m.get('f1_iou33', float('nan')):.3f}  "
                   f"{m.get('hallucination_rate', float('nan')):.3f}   {m.get('center_rmse_px', float('nan')):5.1f}  "
                   f"{r.get('tags', {}).get('gate.passed', '-')}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: serve.host, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: serve.port, 8000).")] = None,
    model: ModelOpt = None,
    params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None, line: LineOpt = DEFAULT_LINE,
):
    """Serve the inspector: page at /, /v1/inspect, OpenAI-compatible /v1/chat/completions, /metrics.
    Following champions (no --model), it answers for every line in lines/ that has one; --line is the default."""
    from components import config
    from components.registry.registry import RegistryError
    from components.serving.server import run

    cfg = _cfg(params, set_, line)
    try:
        run(cfg, model, host, port, None if model else config.other_lines(cfg, params, list(set_ or [])))
    except (RegistryError, FileNotFoundError) as exc:
        _fail(f"{exc}\n(run `defectqa retrain` first, or pick a version: `defectqa models`)")


@app.command(hidden=False)
def stage(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(s.name for s in STAGES)}.")],
    params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None, line: LineOpt = DEFAULT_LINE,
):
    """Run one pipeline stage on the accepted data into <workdir>/pipeline (what `dvc repro` calls)."""
    from components.data.split import load_accepted, split_samples
    from components.data.validate import dataset_version
    from components.evaluation.run import evaluate_model, json_line
    from components.pipeline import RunLayout, stage as stage_named
    from components.train import stages

    try:
        stage_named(name)
    except ValueError as exc:
        _fail(str(exc))
    from components.registry.registry import with_warm_start

    cfg = _cfg(params, set_, line)
    version = dataset_version(cfg)
    if version is None:
        _fail("no accepted data yet: run `defectqa ingest` and `defectqa validate` first")
    cfg = with_warm_start(cfg)
    splits = split_samples(load_accepted(cfg), cfg)
    run = RunLayout(cfg.paths.pipeline_dir)
    lm = stages.lm_samples(splits, cfg)
    calls = {
        "qa": lambda: stages.make_qa(lm, cfg, run.dir("qa")),
        "spatial": lambda: stages.run_spatial(splits["train"], cfg, run.dir("spatial"), version, None, lm),
        "sft": lambda: stages.run_sft(run.model("spatial"), lm, run.dir("qa"), cfg, run.dir("sft")),
        "dpo": lambda: stages.run_dpo(run.model("sft"), lm, run.dir("qa"), cfg, run.dir("dpo")),
        "calibrate": lambda: stages.run_calibrate(run.model("dpo"), splits["calib"], cfg, run.dir("calibrate")),
        "quantize": lambda: stages.run_quantize(run.model("calibrate"), run.dir("quantize")),
        "evaluate": lambda: json.loads(json_line(evaluate_model(run.model("quantize"), splits["eval"], cfg, run.eval(),
                                                                "int8"))),
    }
    typer.echo(json.dumps(calls[name](), default=str))


@app.command("dvc-yaml")
def dvc_yaml_command(
    out: Annotated[Path, typer.Option(help="Where to write it.")] = Path("dvc.yaml"),
    check: Annotated[bool, typer.Option("--check", help="Only say whether the file is up to date (exit 1 if not).")] = False,
):
    """Write dvc.yaml from the stage declarations (components/pipeline.py): each stage's deps and params."""
    from components.pipeline import dvc_yaml

    text = dvc_yaml()
    if check:
        if not out.is_file() or out.read_text() != text:
            _fail(f"{out} is not what components/pipeline.py declares: run `defectqa dvc-yaml`")
        typer.echo(f"{out} is up to date")
        return
    out.write_text(text)
    typer.echo(f"wrote {out}")


config_app = typer.Typer(help="Look at the configuration: every key's value, default and help.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(
    section: Annotated[str | None, typer.Argument(help="One section of the config (an unknown name lists them); "
                                                       "default: every key.")] = None,
    params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None, line: LineOpt = DEFAULT_LINE,
):
    """Every config key with its value (defaults, then the line's file, then params.yaml, then --set), its default
    where the value differs, and its help."""
    from components import config

    cfg = _cfg(params, set_, line)
    try:
        rows = config.describe(cfg, section)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(_config_table(rows))


def _config_text(value) -> str:
    """A value as `--set` and params.yaml take it: tuples and mappings comma-separated (a line's
    words, which only its file sets: `class:singular/plural,...; class:...`)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join("/".join(v) if isinstance(v, tuple) else str(v) for v in value)
    if isinstance(value, dict):
        nested = any(isinstance(v, tuple) for v in value.values())
        return ("; " if nested else ",").join(f"{k}:{_config_text(v) if nested else v}" for k, v in value.items())
    return '""' if value == "" else str(value)


def _config_table(rows: list[dict], cap: int = 16) -> str:
    """Aligned key / value / default / help columns; the default only where the value differs;
    help wrapped to the terminal; a value or default wider than `cap` gets a line of its own."""
    import shutil
    import textwrap

    cells = [(r["key"], _config_text(r["value"]), "" if r["value"] == r["default"] else _config_text(r["default"]),
              r["help"]) for r in rows]
    kw = max(len("key"), *(len(c[0]) for c in cells))
    vw = max(len("value"), *(len(c[1]) for c in cells if len(c[1]) <= cap))
    dw = max(len("default"), *(len(c[2]) for c in cells if len(c[2]) <= cap))
    pad = " " * (kw + vw + dw + 6)
    width = max(shutil.get_terminal_size().columns - len(pad), 40)
    lines = [f"{'key':<{kw}}  {'value':<{vw}}  {'default':<{dw}}  help", f"{'-' * kw}  {'-' * vw}  {'-' * dw}  ----"]
    for key, value, default, text in cells:
        wrapped = textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]
        if len(value) > vw or len(default) > dw:
            lines.append(f"{key:<{kw}}  {value}" + (f"  (default: {default})" if default else ""))
            lines += [pad + w for w in wrapped]
        else:
            lines.append(f"{key:<{kw}}  {value:<{vw}}  {default:<{dw}}  {wrapped[0]}")
            lines += [pad + w for w in wrapped[1:]]
    return "\n".join(line.rstrip() for line in lines)


if __name__ == "__main__":
    sys.exit(app())
