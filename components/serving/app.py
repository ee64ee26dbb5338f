"""The FastAPI app: /v1/inspect, /v1/chat/completions, /v1/models, /healthz, /metrics and the page.

One service answers for several product lines (`Lines`): each line's champion is followed and
swapped on its own; /v1/inspect picks the line by its `line` field, chat by the model name.
What a request sends and gets back follows the line's kind (components/line.py):
- boxes (pcb, steel): `image` a board, optional `template`; the answer's defects with boxes (`inspection`);
- wafer-map (wafer): `image` a bin map as a PNG of three grey levels (0 off the wafer, 128 a
  passing die, 255 a failing die; a map with other values, or sides outside the line's, gets a
  400 naming what is wrong); a template is refused with a 400 (a map is judged alone); the
  answer in `map_inspection`.

Every refused request gets a 4xx with `{"error": {"message", "type", "code"}}` (the
OpenAI error shape, so the official client reads it) and the server keeps serving.
"""
from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect
from starlette.routing import Mount

from components.config import Config, ServeConfig
from components.data.wafer import map_grid
from components.line import WAFER_KIND
from components.qa.grammar import GrammarError
from components.qa.sentence import sentence
from components.serving import chat, limits
from components.serving.limits import InputError
from components.serving.metrics import Metrics
from components.serving.models import MapAnswer, ModelHolder, NoModel, Served

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("defectqa.serving")
INSPECT_FORM = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["image", "question"],
    "properties": {"image": {"type": "string", "format": "binary",
                             "description": "board under test (a wafer-map line: the bin map, a PNG of grey levels "
                                            "0 / 128 / 255)"},
                   "template": {"type": "string", "format": "binary",
                                "description": "aligned defect-free scan (boxes lines only)"},
                   "question": {"type": "string"},
                   "line": {"type": "string", "description": "product line (default: the service's first)"}}}}}}}
HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def create_app(cfg: Config, model_uri: str | None = None, other_lines: dict[str, Config] | None = None) -> FastAPI:
    """The service for `model_uri` (default: follow `models:/<cfg.registered_model>@champion`) on
    cfg's line, and for each of other_lines (line name -> its config) the champion of that line,
    each followed and swapped on its own."""
    metrics = Metrics()
    holder = ModelHolder(cfg, model_uri, on_batch=metrics.batch_size.observe)
    lines = Lines(cfg.line.name, {cfg.line.name: holder} | {
        name: ModelHolder(line_cfg, on_batch=metrics.batch_size.observe) for name, line_cfg in (other_lines or {}).items()})

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await run_in_threadpool(lines.start)
        yield
        lines.stop()

    app = FastAPI(title="DefectQA inspector", version="1", lifespan=lifespan)
    app.state.holder, app.state.lines, app.state.metrics, app.state.cfg = holder, lines, metrics, cfg
    app.add_middleware(BodyLimit, limit=limits.body_limit(cfg.serve))
    _add_error_handlers(app)
    _add_metrics_middleware(app)
    _add_routes(app, lines, cfg.serve)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


# ---------------------------------------------------------------- errors

def error(status: int, message: str, code: str) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "service_unavailable" if status == 503 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "code": code}}, status_code=status)


def _validation_message(exc: RequestValidationError) -> tuple[str, str]:
    first = exc.errors()[0] if exc.errors() else {}
    if first.get("type") == "json_invalid":
        why = (first.get("ctx") or {}).get("error", "not valid JSON")
        return f"malformed JSON body: {why}", "malformed_json"
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    return f"invalid request: {where}: {first.get('msg', 'invalid value')}", "invalid_body"


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InputError)
    async def _input(_r, exc: InputError):
        return error(exc.status, exc.message, exc.code)

    @app.exception_handler(NoModel)
    async def _no_model(_r, exc: NoModel):
        return error(503, str(exc), "no_model")

    @app.exception_handler(GrammarError)
    async def _model_output(_r, exc: GrammarError):  # the model's fault, not the request's
        log.error("the model's answer broke the grammar: %s", exc)
        return error(500, f"the model's answer could not be read ({exc}); try another question",
                     "model_output_error")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r, exc: RequestValidationError):
        return error(400, *_validation_message(exc))

    @app.exception_handler(HTTPException)
    async def _http(_r, exc: HTTPException):
        code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return error(exc.status_code, str(exc.detail), code)

    @app.exception_handler(Exception)
    async def _crash(_r, exc: Exception):  # a bug, never a bad request: log it and say so
        log.exception("request failed")
        return error(500, f"internal error: {type(exc).__name__}", "internal_error")


class BodyLimit:
    """ASGI middleware refusing request bodies over `limit` bytes, before and while reading them."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.limit:
            return await error(413, self._message(), "body_too_large")(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:  # chunked uploads carry no Content-Length
                raise HTTPException(413, self._message())
            return message

        await self.app(scope, limited, send)

    def _message(self) -> str:
        return f"request body over {self.limit / 1e6:.1f} MB (or a bad Content-Length)"


# ---------------------------------------------------------------- metrics

def _add_metrics_middleware(app: FastAPI) -> None:
    metrics: Metrics = app.state.metrics

    @app.middleware("http")
    async def count(request: Request, call_next):
        start, status = time.perf_counter(), 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            metrics.observe(_endpoint(app, request), status, time.perf_counter() - start)


def _endpoint(app: FastAPI, request: Request) -> str:
    """The route template, never the raw path: keeps label cardinality bounded."""
    route = request.scope.get("route")
    if route is not None:
        return route.path
    path = request.url.path
    for r in app.routes:  # requests answered before routing (413) or by a mount (/static)
        if path == r.path or (isinstance(r, Mount) and path.startswith(r.path + "/")):
            return r.path
    return "unmatched"


# ---------------------------------------------------------------- requests -> model

class _InMemoryParser(MultiPartParser):
    # Keep uploaded files in memory (BodyLimit bounds their size): nothing is written to disk.
    spool_max_size = 1 << 40


async def _read_form(request: Request, lim: ServeConfig):
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InputError(415, "send multipart/form-data with the fields image, question and "
                              "(optionally) template", "not_multipart")
    parser = _InMemoryParser(request.headers, request.stream(), max_files=2, max_fields=4,
                             max_part_size=4 * lim.max_question_chars + 1024)
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise InputError(400, f"malformed multipart form: {exc.message}", "bad_multipart") from exc
    except ClientDisconnect as exc:
        raise InputError(400, "the client disconnected during the upload", "client_disconnected") from exc


async def _upload(form, field: str, required: bool) -> bytes | None:
    """The raw bytes of a file field (decoded later, off the event loop)."""
    value = form.get(field)
    if isinstance(value, UploadFile):
        data = await value.read()
        return data if data or required else None  # an empty, unnamed file input: no template chosen
    if value:
        raise InputError(400, f"{field} must be a file upload, not a text field", f"bad_{field}")
    if required:
        raise InputError(400, "the board image is missing: send it as the file field 'image'", "no_image")
    return None


def _answer(holder: ModelHolder, lim: ServeConfig, question: str, image: bytes,
            template: bytes | None) -> dict:
    """Decode, check and ask; runs in a worker thread (decoding and the model are blocking)."""
    wafer = holder.kind == WAFER_KIND
    if wafer:
        picture, reference = _wafer_map(holder, lim, image, template), None
    else:
        picture = limits.read_image(image, "board image", lim)
        reference = limits.read_image(template, "template", lim) if template is not None else None
        limits.check_pair(picture, reference)
    try:
        result, served = holder.ask(picture, question, reference)
    except GrammarError:
        raise  # a ValueError too, but the model's fault: answered as a 500
    except ValueError as exc:  # the Inspector's own input checks
        raise InputError(400, str(exc), "invalid_input") from exc
    return map_inspection(result, served) if wafer else inspection(result, served)


def _wafer_map(holder: ModelHolder, lim: ServeConfig, image: bytes, template: bytes | None):
    """The bin-map grid of an uploaded map image (read as `defectqa ask --line wafer` reads a map PNG:
    components/data/wafer.map_grid), checked: three grey levels, a die, sides the line accepts."""
    from components.model.wafer_inspector import check_grid  # torch import: only with a wafer line

    if template is not None:
        raise InputError(400, f"line {holder.line!r} answers about a wafer bin map alone: send no template",
                         "template_not_used")
    grid = map_grid(limits.read_image(image, "wafer map", lim))
    try:
        check_grid(grid)
    except ValueError as exc:
        raise InputError(400, f"the image is {exc}", "not_a_wafer_map") from exc
    line, (rows, cols) = holder.cfg.line, grid.shape
    if not (line.min_height <= rows <= line.max_height and line.min_width <= cols <= line.max_width):
        raise InputError(400, f"the wafer map is {rows} x {cols} dies (rows x columns); line {holder.line!r} takes "
                              f"{line.min_height}..{line.max_height} rows and {line.min_width}..{line.max_width} "
                              "columns, one pixel a die", "map_size")
    return grid


def inspection(result, served: Served) -> dict:
    """The /v1/inspect body of one InspectResult."""
    ans = result.answer
    body = {
        "answer_text": result.answer_text,
        "defects": [{"class": d.cls, "box": list(d.box), "centre": list(d.center), "confidence": round(d.conf, 4)}
                    for d in ans.detections],
        "none_found": ans.none_found,
        "out_of_scope": ans.out_of_scope,
        "message": result.message or sentence(ans),
        "model": served.info(),
        "line": served.line,
        "latency_s": round(result.latency_s, 4),
    }
    if ans.count is not None:
        body["count"] = ans.count
    if ans.asked is not None:
        body["asked"] = {"classes": list(ans.asked.classes), "count": ans.asked.count, "area": ans.asked.area}
    return body


def map_inspection(result: MapAnswer, served: Served) -> dict:
    """The /v1/inspect body of one wafer answer: WaferInspector.ask's dict as `defectqa ask --line
    wafer` prints it (answer_text: the answer in words; answer: its fields, kind / pattern / conf /
    loc / morph / fail / dies / share / cause, the ones its question kind does not answer empty;
    grammar: its grammar text), the map's most likely pattern with its calibrated probability
    (pattern, confidence: the pattern branch's, whatever the question asked), and what every
    line's body has (message: the sentence a person reads, model, line, latency_s)."""
    pattern, confidence = max(result.distribution.items(), key=lambda kv: kv[1])
    return {**result.asked, "message": result.asked["answer_text"], "pattern": pattern,
            "confidence": round(confidence, 4), "model": served.info(), "line": served.line,
            "latency_s": round(result.latency_s, 4)}


class Lines:
    """The product lines a service answers for: one ModelHolder per line, the first the default
    (a request that names no line)."""

    def __init__(self, default: str, holders: dict[str, ModelHolder]):
        self.default, self.holders = default, holders

    def start(self) -> None:
        for holder in self.holders.values():
            holder.start()

    def stop(self) -> None:
        for holder in self.holders.values():
            holder.stop()

    def of(self, line: str | None) -> ModelHolder:
        """The holder of a line named in a request (none named: the default line's)."""
        name = (line or "").strip() or self.default
        if name not in self.holders:
            raise InputError(400, f"unknown line {name!r}; this service answers for: {', '.join(self.holders)}",
                             "unknown_line")
        return self.holders[name]

    def by_model(self, name: str) -> ModelHolder:
        """The holder whose model a chat request names (`<name>`, `<name>@champion`, `<name>/<version>`)."""
        served_here = []
        for holder in self.holders.values():
            served = holder.current
            base = served.name if served else holder.follows
            if name in {base, f"{base}@champion"} | ({f"{base}/{served.version}"} if served else set()):
                return holder
            served_here.append(f"{base!r} (version {served.version})" if served else f"{base!r} (no model loaded)")
        raise InputError(404, f"model {name!r} is not served here; this service serves {', '.join(served_here)}",
                         "model_not_found")


# ---------------------------------------------------------------- routes

def _add_routes(app: FastAPI, lines: Lines, lim: ServeConfig) -> None:
    metrics: Metrics = app.state.metrics
    holder = lines.of(None)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz")
    async def healthz():
        served = holder.current
        if served is None:
            return JSONResponse({"status": "no_model", "message": holder.problem, "model": None}, status_code=503)
        return {"status": "ok", "model": served.info(), "follows_champion": bool(holder.follows),
                "reloads": holder.reloads, "line": lines.default,
                "lines": {name: (h.current.info() if h.current else None) for name, h in lines.holders.items()}}

    @app.get("/metrics", include_in_schema=False)
    async def prometheus():
        return Response(metrics.render(holder), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/models")
    async def models():
        """One model per line that has one loaded, the default line's first."""
        data = [{"id": s.name, "object": "model", "created": int(s.loaded_at), "owned_by": "defectqa",
                 "version": s.version, "line": name, "kind": s.kind}
                for name, h in lines.holders.items() if (s := h.current) is not None]
        return {"object": "list", "data": data}

    @app.post("/v1/inspect", openapi_extra=INSPECT_FORM)
    async def inspect(request: Request):
        """Ask about a board (multipart fields image, question, optionally template and line), or with
        a wafer-map line about a bin map (image, question, line)."""
        form = await _read_form(request, lim)
        try:
            asked = lines.of(_text(form.get("line")))
            question = limits.check_question(_text(form.get("question")), lim)
            board = await _upload(form, "image", required=True)
            template = await _upload(form, "template", required=False)
        finally:
            await form.close()
        body = await run_in_threadpool(_answer, asked, lim, question, board, template)
        metrics.inference.observe(body["latency_s"])
        return body

    @app.post("/v1/chat/completions")
    async def chat_completions(req: chat.ChatRequest):
        """OpenAI-compatible: content parts image_url (board, optional template; a wafer model: the
        bin map) + text (question)."""
        asked = lines.by_model(req.model)
        text, urls = chat.extract(req)
        question = limits.check_question(text, lim)
        board = limits.decode_data_url(urls[0], "board image", lim)
        template = limits.decode_data_url(urls[1], "template", lim) if len(urls) > 1 else None
        body = await run_in_threadpool(_answer, asked, lim, question, board, template)
        metrics.inference.observe(body["latency_s"])
        return chat.completion(body, body["model"]["name"], chat.content_format(req))


def _text(value) -> str | None:
    if isinstance(value, UploadFile):
        raise InputError(400, "question must be a text field, not a file", "bad_question")
    return value

