"""The inspector service on a real uvicorn, a real MLflow registry and the real tiny model."""
from __future__ import annotations

import base64
import dataclasses
import io
import os
import re
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image

from components.model.blur_check import BlurChecked, load_inspector
from components.model.inference import Inspector
from components.qa.sentence import sentence
from components.registry import registry, tracking
from components.registry.registry import RegistryError
from components.serving import create_app
from components.serving.models import ModelHolder
from components.serving.server import BackgroundServer
from tests.conftest import tiny_cfg

pytestmark = pytest.mark.model  # the session's tiny trained model (tests/conftest.py)

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
QUESTION = "Describe all defects on this board."


def _register(cfg, model_dir: Path) -> str:
    run_id = tracking.start_run(cfg, "serve-test")
    return registry.register_candidate(cfg, run_id, model_dir, {"f1_iou33": 0.5}, "test")


def _with_name(cfg, name: str):
    return dataclasses.replace(cfg, registered_model=name)


@pytest.fixture(scope="module")
def model_dir(tiny_model) -> Path:
    return tiny_model.model("quantize")


@pytest.fixture(scope="module")
def store(tmp_path_factory, model_dir):
    """A real registry whose champion is version 1 of the tiny model; small limits to test against."""
    cfg = tiny_cfg(tmp_path_factory.mktemp("serve-registry"))
    cfg.serve.reload_interval_s = 0.2
    cfg.serve.max_upload_mb = 1.0
    cfg.serve.max_pixels = 700 * 700  # DeepPCB boards (640 x 640) pass
    cfg.serve.max_question_chars = 200
    registry.promote(cfg, _register(cfg, model_dir))
    return cfg


@pytest.fixture(scope="module")
def server(store):
    with BackgroundServer(create_app(store)) as s:
        yield s


def _files(board: Path | bytes, template: Path | bytes | None = None) -> dict:
    read = lambda x: x if isinstance(x, bytes) else Path(x).read_bytes()  # noqa: E731
    files = {"image": ("board.jpg", read(board), "image/jpeg")}
    if template is not None:
        files["template"] = ("template.jpg", read(template), "image/jpeg")
    return files


def inspect(url: str, board, template=None, question: str = QUESTION) -> httpx.Response:
    return httpx.post(f"{url}/v1/inspect", files=_files(board, template), data={"question": question}, timeout=120)


def _data_url(path) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def _png(size: tuple[int, int], mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "PNG")
    return buf.getvalue()


# ---------------------------------------------------------------- answers

def test_inspect_answers_like_the_model(server, store, boards, model_dir):
    b = boards[0]
    r = inspect(server.url, b.test_path, b.template_path)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"answer_text", "defects", "none_found", "message", "model", "latency_s"}
    assert body["model"] == {"name": store.registered_model, "version": "1"}
    # Served as configured (serve.blur_check).
    direct = load_inspector(model_dir, store, blur_check=store.serve.blur_check).ask(b.test_path, QUESTION, b.template_path)
    assert body["answer_text"] == direct.answer_text
    assert body["none_found"] == direct.answer.none_found and body["latency_s"] > 0
    for d, want in zip(body["defects"], direct.answer.detections, strict=True):
        assert d == {"class": want.cls, "box": list(want.box), "centre": list(want.center),
                     "confidence": round(want.conf, 4)}
    # The sentence a person reads: "One short circuit, at (291, 242), confidence 0.64." / "No defects found."
    assert body["message"] == sentence(direct.answer) == direct.answer.to_dict()["message"]
    assert body["message"].endswith(".") and (body["none_found"] == body["message"].startswith("No "))


def test_health_models_and_metrics(server, store, boards):
    assert inspect(server.url, boards[1].test_path).status_code == 200  # no template is fine too
    health = httpx.get(f"{server.url}/healthz").json()
    assert health["status"] == "ok" and health["model"]["version"] == "1" and health["follows_champion"]
    models = httpx.get(f"{server.url}/v1/models").json()
    assert [m["id"] for m in models["data"]] == [store.registered_model]
    text = httpx.get(f"{server.url}/metrics").text
    assert 'defectqa_requests_total{endpoint="/v1/inspect",status="200"}' in text
    assert "defectqa_request_latency_seconds_bucket" in text and "defectqa_model_version 1.0" in text
    assert f'defectqa_model_info{{name="{store.registered_model}",version="1"}} 1.0' in text


def test_page_and_assets_are_served(server):
    page = httpx.get(server.url)
    assert page.status_code == 200 and "DefectQA inspector" in page.text
    links = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert links and all(link.startswith("/static/") for link in links)  # nothing from a CDN
    for link in links:
        assert httpx.get(server.url + link).status_code == 200


def test_chat_completions_with_the_openai_client(server, store, boards):
    b = boards[0]
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="not-needed", max_retries=0, timeout=120)
    assert [m.id for m in client.models.list()] == [store.registered_model]
    resp = client.chat.completions.create(model=store.registered_model, messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": _data_url(b.test_path)}},
        {"type": "image_url", "image_url": {"url": _data_url(b.template_path)}},
        {"type": "text", "text": QUESTION}]}])
    rest = inspect(server.url, b.test_path, b.template_path).json()
    assert resp.choices[0].message.content == rest["message"]  # a sentence
    grammar = client.chat.completions.create(model=store.registered_model, response_format={"type": "grammar"},
                                             messages=[{"role": "user", "content": [
                                                 {"type": "image_url", "image_url": {"url": _data_url(b.test_path)}},
                                                 {"type": "image_url", "image_url": {"url": _data_url(b.template_path)}},
                                                 {"type": "text", "text": QUESTION}]}])
    assert grammar.choices[0].message.content == rest["answer_text"]
    assert resp.choices[0].finish_reason == "stop"
    extra = resp.model_extra["inspection"]
    assert extra["defects"] == rest["defects"] and extra["model"] == rest["model"]

    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="not an image"):
        client.chat.completions.create(model=store.registered_model, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(b"no").decode()}},
            {"type": "text", "text": "Any spurs?"}]}])


def test_concurrent_requests_are_batched_and_answered_as_if_alone(store, boards, tiny_model):
    """Requests arriving together share model calls; each gets the answer it would get alone.
    Served: the fp32 model (int8 quantizes each layer's input with one scale per call, so its
    answers may depend slightly on the rest of the batch)."""
    folder = tiny_model.model("calibrate")
    cfg = dataclasses.replace(store, serve=dataclasses.replace(store.serve, max_batch=4, batch_wait_ms=1000.0))
    questions = [QUESTION, "Any spurs?", "How many defects in the top left?", "Where is the short circuit?"]
    asks = [(b.test_path, b.template_path if k % 3 else None, questions[k % 4])
            for k, b in enumerate((boards[:4] * 2)[:7])]
    got: dict[int, httpx.Response] = {}
    app = create_app(cfg, str(folder))
    with BackgroundServer(app) as server:
        start = threading.Barrier(len(asks))

        def client(k):
            board, template, question = asks[k]
            start.wait()
            got[k] = inspect(server.url, board, template, question)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(len(asks))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        batcher = app.state.holder.current.batcher
        served = app.state.holder.current.inspector
        metrics = httpx.get(f"{server.url}/metrics").text

    assert isinstance(served, BlurChecked) == cfg.serve.blur_check
    direct = load_inspector(folder, cfg, blur_check=cfg.serve.blur_check)
    for k, (board, template, question) in enumerate(asks):
        assert got[k].status_code == 200, got[k].text
        want = direct.ask(board, question, template)
        body = got[k].json()
        assert body["answer_text"] == want.answer_text, (k, question)
        assert [d["box"] for d in body["defects"]] == [list(d.box) for d in want.answer.detections]
    assert batcher.calls < len(asks)  # 7 requests, at most 4 per call: 2 calls when they all arrive together
    assert f"defectqa_batch_size_count {float(batcher.calls)}" in metrics
    assert f"defectqa_batch_size_sum {float(len(asks))}" in metrics


def test_a_failing_request_does_not_fail_its_batch(boards, tiny_model):
    """The batcher asks a failed batch's requests again one by one: only the bad one fails."""
    from components.serving.batcher import Batcher

    inspector = Inspector.load(tiny_model.model("calibrate"))
    sizes: list[int] = []
    batcher = Batcher(inspector, max_batch=3, wait_s=2.0, on_batch=sizes.append)
    small = Image.open(boards[1].template_path).resize((320, 320))  # a template that does not fit its board
    asks = [(boards[0].test_path, QUESTION, boards[0].template_path), (boards[1].test_path, "Any spurs?", small),
            (boards[2].test_path, "How many defects?", None)]
    out: dict[int, object] = {}
    start = threading.Barrier(len(asks))

    def client(k):
        start.wait()
        try:
            out[k] = batcher.ask(asks[k][0], asks[k][1], asks[k][2])
        except ValueError as exc:
            out[k] = exc

    threads = [threading.Thread(target=client, args=(k,)) for k in range(len(asks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert isinstance(out[1], ValueError) and "template is 320x320" in str(out[1])
    for k in (0, 2):
        assert out[k].answer_text == inspector.ask(*asks[k]).answer_text
    assert sizes == [3, 1, 1, 1]  # the batch, then each request alone


# ---------------------------------------------------------------- refusals

def _chat(url, payload=None, content: bytes | None = None):
    if content is not None:
        return httpx.post(f"{url}/v1/chat/completions", content=content,
                          headers={"content-type": "application/json"}, timeout=60)
    return httpx.post(f"{url}/v1/chat/completions", json=payload, timeout=60)


def _chat_msg(image_url: str, text: str = "Any spurs?", model: str | None = None, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": image_url}}, {"type": "text", "text": text}]}], **extra}


def _chunks(total: int):
    """A body sent chunked, without Content-Length."""
    yield b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
    for _ in range(total // 100_000):
        yield b"x" * 100_000


class Ctx:
    """What the bad requests are made of: a real board, its data URL and the served model's name."""

    def __init__(self, board, name: str):
        self.board = Path(board.test_path).read_bytes()
        self.url = _data_url(board.test_path)
        small = io.BytesIO()
        Image.open(board.template_path).resize((320, 320)).save(small, "JPEG")
        self.small, self.name = small.getvalue(), name


MULTIPART_X = {"content-type": "multipart/form-data; boundary=x"}
BAD = {  # case: (send(url, ctx), status, words in the message)
    "not an image": (lambda u, c: inspect(u, b"just some text, not a picture"), 400, "not an image"),
    "truncated image": (lambda u, c: inspect(u, c.board[: len(c.board) // 2]), 400, "truncated"),
    "over the size limit": (lambda u, c: inspect(u, os.urandom(1_200_000)), 413, "limit is 1 MB"),
    # 9 megapixels in a few KB: refused from the header, before any pixel is decoded
    "over the pixel limit": (lambda u, c: inspect(u, _png((3000, 3000), "1")), 413, "pixels"),
    "template of another size": (lambda u, c: inspect(u, c.board, c.small), 400, "template is 320x320"),
    "empty question": (lambda u, c: inspect(u, c.board, question="   "), 400, "question is empty"),
    "overlong question": (lambda u, c: inspect(u, c.board, question="why " * 60), 400, "limit is 200"),
    "missing image": (lambda u, c: httpx.post(f"{u}/v1/inspect", files={"x": ("a", b"1")},
                                              data={"question": "Any spurs?"}), 400, "image is missing"),
    "not multipart": (lambda u, c: httpx.post(f"{u}/v1/inspect", json={"question": "hi"}), 415, "multipart"),
    "three files": (lambda u, c: httpx.post(f"{u}/v1/inspect", files=[("image", ("a", c.board))] * 3,
                                            data={"question": "hi"}), 400, "Too many files"),
    "body too large": (lambda u, c: httpx.post(f"{u}/v1/inspect", content=b"x" * 4_000_000,
                                               headers=MULTIPART_X), 413, "request body over"),
    "chunked body too large": (lambda u, c: httpx.post(f"{u}/v1/inspect", content=_chunks(4_000_000),
                                                       headers=MULTIPART_X), 413, "request body over"),
    "malformed JSON": (lambda u, c: _chat(u, content=b'{"model": "x", "messages": ['), 400, "malformed JSON"),
    "JSON of the wrong shape": (lambda u, c: _chat(u, {"model": c.name, "messages": "hi"}), 400, "messages"),
    "unknown model name": (lambda u, c: _chat(u, _chat_msg(c.url, model="other")), 404,
                           "model 'other' is not served here"),
    "remote image URL": (lambda u, c: _chat(u, _chat_msg("http://example.com/b.jpg", model=c.name)), 400,
                         "does not fetch URLs"),
    "bad base64": (lambda u, c: _chat(u, _chat_msg("data:image/jpeg;base64,@@@", model=c.name)), 400, "base64"),
    "no image in chat": (lambda u, c: _chat(u, {"model": c.name, "messages": [{"role": "user", "content": "hi"}]}),
                         400, "image_url content part"),
    "empty chat question": (lambda u, c: _chat(u, _chat_msg(c.url, " ", model=c.name)), 400, "question is empty"),
    "streaming": (lambda u, c: _chat(u, _chat_msg(c.url, model=c.name, stream=True)), 400,
                  "streaming is not supported"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_requests_get_a_clear_4xx(server, store, boards, case):
    send, status, words = BAD[case]
    r = send(server.url, Ctx(boards[0], store.registered_model))
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert words in err["message"] and err["type"] == "invalid_request_error" and err["code"]
    assert httpx.get(f"{server.url}/healthz").status_code == 200  # still serving


def test_server_still_answers_after_refusals(server, boards):
    assert inspect(server.url, boards[2].test_path, boards[2].template_path).status_code == 200
    text = httpx.get(f"{server.url}/metrics").text
    assert 'status="500"' not in text


# ---------------------------------------------------------------- champions

def test_no_champion_means_503_until_one_is_promoted(store, boards, model_dir):
    from fastapi.testclient import TestClient

    cfg = _with_name(store, "serve-empty")
    with TestClient(create_app(cfg)) as client:
        health = client.get("/healthz")
        assert health.status_code == 503 and "no champion yet" in health.json()["message"]
        r = client.post("/v1/inspect", files=_files(boards[0].test_path), data={"question": QUESTION})
        assert r.status_code == 503 and "no champion yet" in r.json()["error"]["message"]
        assert client.get("/v1/models").json()["data"] == []

        registry.promote(cfg, _register(cfg, model_dir))
        deadline = time.monotonic() + 60
        while client.get("/healthz").status_code != 200:
            assert time.monotonic() < deadline, "the promoted champion was never picked up"
            time.sleep(0.1)
        r = client.post("/v1/inspect", files=_files(boards[0].test_path), data={"question": QUESTION})
        assert r.status_code == 200 and r.json()["model"] == {"name": "serve-empty", "version": "1"}


def test_a_fixed_model_that_does_not_exist_fails_at_start(store):
    with pytest.raises(RegistryError, match="has no alias 'staging'"):
        ModelHolder(store, f"models:/{store.registered_model}@staging").start()
    with pytest.raises(RegistryError, match="no version 9"):
        ModelHolder(store, f"models:/{store.registered_model}/9").start()


def test_a_fixed_version_reports_its_version(store):
    holder = ModelHolder(store, f"models:/{store.registered_model}/1")
    holder.start()
    assert holder.current.info() == {"name": store.registered_model, "version": "1"} and not holder.follows


def test_hot_swap_under_load_fails_no_request(store, boards, model_dir):
    cfg = _with_name(store, "serve-swap")
    registry.promote(cfg, _register(cfg, model_dir))
    v2 = _register(cfg, model_dir)  # registered now; promoted while requests run
    seen: list[tuple[str, int, str | None]] = []
    stop = threading.Event()

    def client(b):
        with httpx.Client(timeout=120) as c:
            while not stop.is_set():
                r = c.post(f"{server.url}/v1/inspect", files=_files(b.test_path, b.template_path),
                           data={"question": "Any spurs?"})
                seen.append((threading.current_thread().name, r.status_code,
                             r.json()["model"]["version"] if r.status_code == 200 else r.text))

    with BackgroundServer(create_app(cfg)) as server:
        threads = [threading.Thread(target=client, args=(b,), name=f"c{i}") for i, b in enumerate(boards[:3])]
        for t in threads:
            t.start()
        _wait(lambda: len(seen) >= 3)
        registry.promote(cfg, v2)
        _wait(lambda: sum(1 for s in seen if s[2] == v2) >= 3)
        stop.set()
        for t in threads:
            t.join(timeout=120)
        health = httpx.get(f"{server.url}/healthz").json()
        metrics = httpx.get(f"{server.url}/metrics").text

    assert all(status == 200 for _, status, _ in seen), [s for s in seen if s[1] != 200]
    for name in {s[0] for s in seen}:  # each client sees 1, 1, ..., 2, 2: never back
        versions = [v for n, _, v in seen if n == name]
        assert versions == sorted(versions, key=int)
    assert {v for _, _, v in seen} == {"1", v2}
    assert health["model"]["version"] == v2 and health["reloads"] == 1
    assert f"defectqa_model_version {v2}.0" in metrics


def _wait(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# ---------------------------------------------------------------- several product lines

def test_one_service_answers_for_each_line_with_a_champion_and_swaps_each_on_its_own(store, boards, model_dir):
    """Two lines (the tiny model stands in for both): /v1/inspect picks by `line`, chat by the
    model's name, /v1/models lists one model per line that has one, and a promotion on one
    line swaps that line only."""
    from fastapi.testclient import TestClient

    main, other = _with_name(store, "serve-line-a"), _with_name(store, "serve-line-b")
    other = dataclasses.replace(other, line=dataclasses.replace(other.line, name="second"))
    registry.promote(main, _register(main, model_dir))
    with TestClient(create_app(main, other_lines={"second": other})) as client:
        assert client.get("/v1/models").json()["data"][0]["line"] == main.line.name
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["serve-line-a"]
        r = client.post("/v1/inspect", files=_files(boards[0].test_path), data={"question": QUESTION, "line": "second"})
        assert r.status_code == 503 and "serve-line-b" in r.json()["error"]["message"]
        r = client.post("/v1/inspect", files=_files(boards[0].test_path), data={"question": QUESTION, "line": "wafer?"})
        assert r.status_code == 400 and "unknown line 'wafer?'" in r.json()["error"]["message"]

        registry.promote(other, _register(other, model_dir))
        registry.promote(other, _register(other, model_dir))  # v2 of line b; line a stays at v1
        _wait(lambda: (client.get("/healthz").json()["lines"]["second"] or {}).get("version") == "2")
        ids = {m["id"]: (m["line"], m["version"]) for m in client.get("/v1/models").json()["data"]}
        assert ids == {"serve-line-a": (main.line.name, "1"), "serve-line-b": ("second", "2")}
        r = client.post("/v1/inspect", files=_files(boards[0].test_path), data={"question": QUESTION, "line": "second"})
        assert r.status_code == 200 and r.json()["model"] == {"name": "serve-line-b", "version": "2"}
        assert client.post("/v1/inspect", files=_files(boards[0].test_path),
                           data={"question": QUESTION}).json()["model"] == {"name": "serve-line-a", "version": "1"}
        chat = client.post("/v1/chat/completions", json={"model": "serve-line-b", "messages": [{"role": "user", "content": [
            {"type": "text", "text": QUESTION},
            {"type": "image_url", "image_url": {"url": _data_url(boards[0].test_path)}}]}]})
        assert chat.status_code == 200 and chat.json()["model"] == "serve-line-b"
        unknown = client.post("/v1/chat/completions", json={"model": "nope", "messages": [{"role": "user", "content": "hi"}]})
        assert unknown.status_code == 404 and "serve-line-a" in unknown.json()["error"]["message"]
