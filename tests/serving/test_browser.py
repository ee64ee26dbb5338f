"""The inspector's web page in Debian's Chromium (Playwright), against a real server and model."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from components.serving import create_app
from components.serving.server import BackgroundServer
from tests.conftest import TINY, tiny_cfg

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
QUESTIONS = ["Describe all defects on this board.", "Where is the short circuit?", "How many spurs?",
             "Any pin-holes?"]

pytestmark = [pytest.mark.browser, pytest.mark.model,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed at "
                                 "/usr/bin/chromium (run infra/install-browser.sh)")]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="module")
def naming_model(tiny_model, tmp_path_factory) -> Path:
    """A real model trained (a few SFT steps) to report every region as a spur.

    What a seconds-trained model learns from real targets is not predictable enough to
    test drawing; a consistent target is: after each region descriptor, say `spur`.
    """
    from components import config
    from components.model.regions import descriptors
    from components.model.vlm import DefectVLM
    from components.qa.grammar import Reading, to_scan
    from components.train.lm_data import _assistant, _prompt, load_views
    from components.train.sft import train_sft

    work = tmp_path_factory.mktemp("naming-model")
    cfg = config.load(None, TINY + ["train.sft_max_steps=40", "train.sft_lr=0.005"])
    views = load_views(tiny_model.dir("spatial") / "views.json")
    rows = [{"images": [v.image], "prompt": _prompt(q, None),
             "completion": _assistant(to_scan(Reading(), descriptors(v.regions, v.size, Reading()),
                                              ["spur"] * len(v.regions)))}
            for v in views.values() for q in QUESTIONS]
    vlm = DefectVLM.load(tiny_model.model("spatial"), quantize=False)
    train_sft(vlm, rows * 4, cfg.train, work / "trainer")
    return vlm.save(work / "model")


@pytest.fixture(scope="module")
def silent_model(tiny_model, tmp_path_factory) -> Path:
    """The tiny model with its region floor above any score: it can only answer 'none found'."""
    from components.model.vlm import META_FILE

    folder = tmp_path_factory.mktemp("silent-model") / "model"
    shutil.copytree(tiny_model.model("quantize"), folder)
    meta = json.loads((folder / META_FILE).read_text())
    meta["region_floor"] = 1.01
    (folder / META_FILE).write_text(json.dumps(meta))
    return folder


def _serve(model: Path, tmp_path: Path) -> BackgroundServer:
    return BackgroundServer(create_app(tiny_cfg(tmp_path), str(model)))


def _api(url: str, board, question: str) -> httpx.Response:
    files = {"image": ("b.jpg", Path(board.test_path).read_bytes()),
             "template": ("t.jpg", Path(board.template_path).read_bytes())}
    return httpx.post(f"{url}/v1/inspect", files=files, data={"question": question}, timeout=120)


def _ask_on_page(page, url: str, board, question: str) -> None:
    page.goto(url)
    page.set_input_files("#board", board.test_path)
    page.set_input_files("#template", board.template_path)
    page.wait_for_function("document.getElementById('board-img').naturalWidth > 0")
    page.locator(".suggestion", has_text=question).click()  # a suggested question asks at once
    page.wait_for_function("document.getElementById('summary').textContent !== ''", timeout=120_000)
    assert page.input_value("#question") == question


def _drawn(page) -> list[dict]:
    return page.eval_on_selector_all("#overlay rect", """els => els.map(e => ({
        cls: e.dataset.class, conf: Number(e.dataset.confidence),
        box: ['x', 'y', 'width', 'height'].map(a => Number(e.getAttribute(a))),
        label: e.nextElementSibling.textContent}))""")


def test_boxes_and_list_match_the_api(naming_model, boards, page, tmp_path):
    with _serve(naming_model, tmp_path) as server:
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        # The model's answers vary by board; use the first one that names a defect.
        found = next(((b, q, r.json()) for b in boards for q in QUESTIONS
                      if (r := _api(server.url, b, q)).status_code == 200 and r.json()["defects"]), None)
        assert found, "the naming model named no defect on any board"
        board, question, api = found
        _ask_on_page(page, server.url, board, question)

        drawn, items = _drawn(page), page.locator("#defects li").all_inner_texts()
        assert len(drawn) == len(items) == len(api["defects"])
        for rect, item, d in zip(drawn, items, api["defects"], strict=True):
            x1, y1, x2, y2 = d["box"]
            assert rect["box"] == [x1, y1, x2 - x1, y2 - y1] and rect["cls"] == d["class"]
            assert rect["conf"] == d["confidence"] and rect["label"] == f"{d['class']} {d['confidence']:.2f}"
            assert item.startswith(f"{d['class']} {d['confidence']:.2f}")
            assert f"({d['centre'][0]}, {d['centre'][1]})" in item and f"{x1},{y1},{x2},{y2}" in item
        # The overlay's coordinates are the board's pixels, and it covers the picture exactly.
        assert page.get_attribute("#overlay", "viewBox") == "0 0 640 640"
        img, svg = page.locator("#board-img").bounding_box(), page.locator("#overlay").bounding_box()
        assert all(abs(img[k] - svg[k]) < 1 for k in ("x", "y", "width", "height"))
        assert page.locator("#none-found").is_hidden()
        assert page.text_content("#answer-text") == api["answer_text"]
        off = [u for u in requests if not u.startswith((server.url, "blob:"))]  # blob: = the local preview
        assert not off, f"the page fetched from elsewhere: {off}"


def test_no_defects_is_said_plainly(silent_model, boards, page, tmp_path):
    with _serve(silent_model, tmp_path) as server:
        api = _api(server.url, boards[0], QUESTIONS[0]).json()
        assert api["none_found"], "a model with no regions can only answer 'none found'"
        _ask_on_page(page, server.url, boards[0], QUESTIONS[0])
        assert page.locator("#none-found").is_visible()
        assert page.text_content("#none-found") == api["message"]
        assert api["message"].startswith("No ") and " found" in api["message"]
        assert _drawn(page) == [] and page.locator("#defects li").count() == 0
        assert page.text_content("#model-status") == "model silent-model0/model (local folder)" or \
            page.text_content("#model-status").endswith("model (local folder)")


def test_errors_are_shown_in_words(tiny_model, page, tmp_path):
    with _serve(tiny_model.model("quantize"), tmp_path) as server:
        page.goto(server.url)
        page.click("#ask")
        assert page.text_content("#error") == "Choose a board image first."
        page.set_input_files("#board", {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a board"})
        page.fill("#question", "Any spurs?")
        page.click("#ask")
        page.wait_for_function("document.getElementById('busy').hidden && !document.getElementById('error').hidden")
        text = page.text_content("#error")
        assert text.startswith("The server refused the request:") and "not an image" in text
        assert page.locator("#overlay rect").count() == 0
        assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_the_wafer_line_shows_the_map_and_its_answer(two_lines, page):
    """Pick the wafer line, upload a bin map: no template input, the map scaled up die by die,
    the answer in words with the map's pattern and confidence, no boxes."""
    question = "What pattern does this wafer show?"
    path = two_lines.png[two_lines.maps[0].map_id]
    with BackgroundServer(create_app(two_lines.pcb, other_lines=two_lines.other_lines())) as server:
        api = httpx.post(f"{server.url}/v1/inspect", files={"image": ("m.png", path.read_bytes())},
                         data={"question": question, "line": "wafer"}, timeout=120).json()
        page.goto(server.url)
        page.wait_for_function("document.getElementById('line').options.length === 2")
        assert page.locator("#template-drop").is_visible()
        page.select_option("#line", "wafer")
        assert page.locator("#template-drop").is_hidden() and page.text_content("#board-title") == "Wafer map"
        page.set_input_files("#board", str(path))
        page.wait_for_function("document.getElementById('board-img').naturalWidth > 0")
        page.locator(".suggestion", has_text=question).click()
        page.wait_for_function("!document.getElementById('map-result').hidden", timeout=120_000)
        assert page.text_content("#map-answer") == api["answer_text"]
        assert page.text_content("#pattern") == api["pattern"]
        assert page.text_content("#confidence") == f"{api['confidence']:.2f}"
        assert page.text_content("#answer-text") == api["grammar"]
        assert page.locator("#overlay rect").count() == 0 and page.locator("#defects li").count() == 0
        rows, cols = two_lines.maps[0].grid.shape
        shown = page.locator("#board-img").bounding_box()
        assert shown["width"] >= 5 * cols  # a die is several screen pixels, not smoothed
        assert page.eval_on_selector("#board-img", "e => getComputedStyle(e).imageRendering") == "pixelated"
        page.select_option("#line", "pcb")
        assert page.locator("#template-drop").is_visible() and page.text_content("#result-title") == "Defects"
