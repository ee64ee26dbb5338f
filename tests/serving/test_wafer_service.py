"""The wafer line in the service: bin-map PNGs asked on /v1/inspect and chat, beside the pcb line,
on a real registry with the tiny trained PCB and wafer models (tests/serving/conftest.py)."""
from __future__ import annotations

import base64
import dataclasses
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from components import config
from components.data.wafer import read_map_image
from components.line import WAFER_KIND
from components.model.wafer_inspector import WaferInspector
from components.serving import create_app
from components.serving.server import BackgroundServer
from tests.conftest import TINY
from tests.serving.conftest import noise_png

pytestmark = pytest.mark.model

QUESTION = "What pattern does this wafer show?"
BOARD_QUESTION = "Describe all defects on this board."


@pytest.fixture(scope="module")
def server(two_lines):
    with BackgroundServer(create_app(two_lines.pcb, other_lines=two_lines.other_lines())) as s:
        yield s


def ask_map(url: str, image: bytes, question: str = QUESTION, line: str | None = "wafer", **files) -> httpx.Response:
    data = {"question": question} | ({"line": line} if line else {})
    return httpx.post(f"{url}/v1/inspect", files={"image": ("map.png", image, "image/png"), **files}, data=data,
                      timeout=120)


def _png(grid: np.ndarray, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(grid, "L").convert(mode).save(buf, "PNG")
    return buf.getvalue()


def test_a_wafer_map_is_answered_beside_the_pcb_line(server, two_lines, boards):
    labels = tuple(two_lines.wafer.data.classes)
    direct = WaferInspector.load(two_lines.wafer_dir)
    for m in two_lines.maps:
        path = two_lines.png[m.map_id]
        r = ask_map(server.url, path.read_bytes())
        assert r.status_code == 200, r.text
        body = r.json()
        want = direct.ask(read_map_image(path), QUESTION)  # the CLI's reader and answer
        assert body["answer_text"] and body["answer_text"] == want["answer_text"] == body["message"]
        assert body["answer"] == json.loads(json.dumps(want["answer"])) and body["grammar"] == want["grammar"]
        assert body["answer"]["kind"] and (body["answer"]["pattern"] in labels or body["answer"]["pattern"] == "")
        assert body["pattern"] in labels and 0 < body["confidence"] <= 1
        top = max(direct.distributions([m.grid])[0].items(), key=lambda kv: kv[1])
        assert (body["pattern"], body["confidence"]) == (top[0], round(top[1], 4))
        assert body["model"] == {"name": two_lines.wafer.registered_model, "version": "1"}
        assert body["line"] == "wafer" and body["latency_s"] > 0 and "defects" not in body
    # An RGB PNG of the same three grey levels is the same map.
    m = two_lines.maps[0]
    rgb = ask_map(server.url, _png(m.grid, "RGB"))
    assert rgb.status_code == 200 and rgb.json()["answer"] == ask_map(server.url, _png(m.grid)).json()["answer"]

    # The pcb line still answers in the same service: the default line, and by name.
    b = boards[0]
    for line in (None, "pcb"):
        r = ask_map(server.url, open(b.test_path, "rb").read(), BOARD_QUESTION, line)
        assert r.status_code == 200, r.text
        assert "defects" in r.json() and r.json()["line"] == "pcb"
        assert r.json()["model"] == {"name": two_lines.pcb.registered_model, "version": "1"}
    models = {m["line"]: (m["id"], m["kind"]) for m in httpx.get(f"{server.url}/v1/models").json()["data"]}
    assert models == {"pcb": (two_lines.pcb.registered_model, "boxes"),
                      "wafer": (two_lines.wafer.registered_model, WAFER_KIND)}
    assert httpx.get(f"{server.url}/healthz").json()["lines"]["wafer"]["version"] == "1"


def test_chat_names_the_wafer_model(server, two_lines):
    m = two_lines.maps[1]
    png = two_lines.png[m.map_id].read_bytes()
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    rest = ask_map(server.url, png).json()
    for fmt, key in (("text", "message"), ("grammar", "grammar")):
        r = httpx.post(f"{server.url}/v1/chat/completions", timeout=120, json={
            "model": two_lines.wafer.registered_model, "response_format": {"type": fmt},
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                      {"type": "text", "text": QUESTION}]}]})
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == rest[key]
        assert r.json()["inspection"]["pattern"] == rest["pattern"]


def _grid(rows: int, cols: int) -> np.ndarray:
    """A round wafer of passing dies with a few failing ones, 0 outside."""
    y, x = np.mgrid[:rows, :cols]
    grid = np.where((y - rows / 2) ** 2 / (rows / 2) ** 2 + (x - cols / 2) ** 2 / (cols / 2) ** 2 < 1, 128, 0)
    grid[rows // 2, cols // 2] = 255
    return grid.astype(np.uint8)


BAD = {  # case: (image bytes or a maker, extra files, status, words in the message)
    "RGB noise": (lambda tmp: noise_png(tmp / "noise.png").read_bytes(), {}, 400,
                  "not a wafer bin map: values other than 0 / 128 / 255"),
    "no die": (lambda tmp: _png(np.zeros((30, 30), np.uint8)), {}, 400, "no die on it"),
    "a template": (lambda tmp: _png(_grid(30, 30)), {"template": ("t.png", _png(_grid(30, 30)))}, 400,
                   "send no template"),
    "too many dies a side": (lambda tmp: _png(_grid(450, 30)), {}, 400, "450 x 30 dies"),
    "not an image": (lambda tmp: b"rows of dies, in words", {}, 400, "not an image"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_what_is_no_wafer_map_gets_a_400_naming_it(server, tmp_path, case):
    make, files, status, words = BAD[case]
    r = ask_map(server.url, make(tmp_path), **files)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]["message"]
    assert ask_map(server.url, _png(_grid(30, 30))).status_code == 200  # still serving


def test_a_wafer_line_without_a_champion_answers_503_and_the_pcb_line_answers(two_lines, boards):
    from fastapi.testclient import TestClient

    empty = dataclasses.replace(two_lines.wafer, registered_model="serve-wafer-none")
    with TestClient(create_app(two_lines.pcb, other_lines={"wafer": empty})) as client:
        r = client.post("/v1/inspect", files={"image": ("m.png", two_lines.png[two_lines.maps[0].map_id].read_bytes())},
                        data={"question": QUESTION, "line": "wafer"})
        assert r.status_code == 503 and "no champion yet" in r.json()["error"]["message"]
        r = client.post("/v1/inspect", files={"image": ("b.jpg", open(boards[0].test_path, "rb").read())},
                        data={"question": BOARD_QUESTION})
        assert r.status_code == 200 and r.json()["line"] == "pcb"
        assert [m["line"] for m in client.get("/v1/models").json()["data"]] == ["pcb"]


def test_serve_follows_the_wafer_line_too():
    """`defectqa serve` (no --model) answers for every line in lines/: the wafer line among them, as a wafer-map line."""
    cfg = config.load(None, TINY)
    others = config.other_lines(cfg, None, TINY)
    assert others["wafer"].line.kind == WAFER_KIND and others["wafer"].registered_model == "defect-vlm-wafer"
