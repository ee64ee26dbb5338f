"""Which model serves: load the champion at start, follow promotions, swap without dropping requests.

The holder keeps one immutable `Served` reference. A background thread polls the
registry every `cfg.serve.reload_interval_s`; when the champion version changed it
loads the new model off to the side and then replaces the reference in one
assignment. A request takes the reference once, so requests in flight finish on the
model they started with, and new requests go to the new one.

Each `Served` model answers through its own micro-batcher (components/serving/batcher.py):
concurrent requests are answered together, up to `serve.max_batch` per model call.

What a line's model is follows the line's kind (components/line.py), in one place (`load_model`):
a boxes line's is an Inspector (boards, optional templates), a wafer-map line's a WaferInspector
behind `WaferMaps` (bin-map grids, no template), which answers the batcher's calls like an Inspector.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from components.config import Config
from components.line import BOXES_KIND, WAFER_KIND
from components.registry import registry
from components.serving.batcher import Batcher

log = logging.getLogger("defectqa.serving")
_CHAMPION_URI = re.compile(r"^(?:models:/(?P<name>[^/@]+))?@champion$")


class NoModel(RuntimeError):
    """No model is loaded (no champion yet, or the first load failed); the message says why."""


@dataclass
class Served:
    """One loaded model; never mutated after creation (its batcher keeps its own queue)."""
    inspector: object
    name: str
    version: str
    folder: Path
    line: str = ""
    """The product line it answers for (its config's line.name)."""
    kind: str = BOXES_KIND
    """The line's kind: what a request sends (a board, or a wafer bin map) and what it gets back."""
    loaded_at: float = field(default_factory=time.time)
    # The only way requests reach the model: one batch at a time, from the batcher's worker.
    batcher: Batcher | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.batcher is None:
            self.batcher = Batcher(self.inspector)

    def info(self) -> dict:
        return {"name": self.name, "version": self.version}


@dataclass(frozen=True)
class MapAnswer:
    """One wafer question's answer as the service returns it."""
    asked: dict
    """WaferInspector.ask's answer: {answer_text, answer (the WaferAnswer's fields), grammar}."""
    distribution: dict[str, float]
    """The pattern branch's calibrated distribution over the line's labels, for the map."""
    latency_s: float
    """The batch's time divided by its size (as an Inspector's answers report it)."""


class WaferMaps:
    """A WaferInspector as the batcher calls a model: ask_batch([(grid, None), ...], questions).

    The batch's maps go through the pattern branch in one call (their distributions: each map's most
    likely pattern, whatever its question asks), then the questions are read together
    (WaferInspector.ask_batch, the one place a wafer answer is written)."""

    def __init__(self, inspector):
        self.inspector = inspector

    def ask_batch(self, pairs: list[tuple], questions: list[str]) -> list[MapAnswer]:
        start = time.perf_counter()
        grids = [grid for grid, _template in pairs]
        distributions = self.inspector.distributions(grids)
        asked = self.inspector.ask_batch(grids, questions, distributions)
        each = (time.perf_counter() - start) / len(grids)
        return [MapAnswer(a, d, each) for a, d in zip(asked, distributions, strict=True)]


def load_model(folder: Path, cfg: Config):
    """The model of a line's model folder, by the line's kind (heavy imports: only when a model loads)."""
    if cfg.line.kind == WAFER_KIND:
        from components.model.wafer_inspector import WaferInspector

        return WaferMaps(WaferInspector.load(folder))
    from components.model.blur_check import load_inspector

    return load_inspector(folder, cfg)


def champion_target(cfg: Config, model_uri: str | None) -> str | None:
    """The registered-model name whose champion the service follows, or None for a fixed model."""
    uri = (model_uri or "@champion").strip()
    m = _CHAMPION_URI.match(uri)
    return (m["name"] or cfg.registered_model) if m else None


class ModelHolder:
    """The model a service answers with: `models:/<name>@champion` (followed), or a fixed version,
    alias or folder (loaded once)."""

    def __init__(self, cfg: Config, model_uri: str | None = None, on_batch: Callable[[int], None] | None = None):
        """on_batch(size) is called for each model call (e.g. a batch-size metric)."""
        self.uri = model_uri or f"models:/{cfg.registered_model}@champion"
        self.on_batch = on_batch
        self.follows = champion_target(cfg, model_uri)
        self.cfg = dataclasses.replace(cfg, registered_model=self.follows) if self.follows else cfg
        self.line, self.kind = cfg.line.name, cfg.line.kind
        self.interval = cfg.serve.reload_interval_s
        self.reloads = 0
        self.problem = "the model has not been loaded yet"
        self._served: Served | None = None
        self._failed_version: str | None = None
        self._started = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refresh_lock = threading.Lock()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Load the model; a fixed URI that cannot be loaded raises (RegistryError, FileNotFoundError).

        When following the champion, "no champion yet" is not an error: the service
        answers 503 until one is promoted and picked up by the reload thread.
        """
        if self._started:
            return
        if self.follows:
            self.refresh()
            if self.interval > 0:  # 0 or less: load the champion once, never follow promotions
                self._thread = threading.Thread(target=self._watch, name="champion-watch", daemon=True)
                self._thread.start()
        else:
            folder = registry.resolve(self.cfg, self.uri)
            self._served = self._load(folder, *self._fixed_identity(folder))
        self._started = True

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    # ------------------------------------------------------------ state

    @property
    def current(self) -> Served | None:
        return self._served

    def require(self) -> Served:
        served = self._served
        if served is None:
            raise NoModel(self.problem)
        return served

    def ask(self, image: Image.Image | np.ndarray, question: str, template: Image.Image | None = None):
        """(InspectResult, Served) from the model serving right now, batched with concurrent requests;
        a wafer-map line: (MapAnswer, Served) for a bin-map grid (`image`), never with a template."""
        served = self.require()  # taken once: a swap during this call does not affect it
        return served.batcher.ask(image, question, template), served

    # ------------------------------------------------------------ loading

    def refresh(self) -> bool:
        """Load the champion when it differs from what serves; True when a new model was swapped in."""
        with self._refresh_lock:
            try:
                return self._refresh()
            except Exception as exc:  # the registry may be briefly unreachable: keep serving
                log.warning("champion check failed: %s", exc)
                if self._served is None:
                    self.problem = f"could not load the champion of {self.follows!r}: {exc}"
                return False

    def _refresh(self) -> bool:
        version = registry.champion(self.cfg)
        if version is None:
            if self._served is None:
                self.problem = (f"no champion yet: model {self.follows!r} has no promoted version at "
                                f"{self.cfg.paths.mlflow_uri()} (promote one with `defectqa promote`)")
            return False
        current = self._served
        if (current and current.version == version) or version == self._failed_version:
            return False
        try:
            folder = registry.resolve(self.cfg, f"models:/{self.follows}/{version}")
            new = self._load(folder, self.follows, version)
        except Exception:
            self._failed_version = version  # don't retry a broken version every few seconds
            raise
        self._served = new  # the atomic swap
        if current is not None:
            self.reloads += 1
        log.info("serving %s version %s (was %s)", self.follows, version, current.version if current else "none")
        return True

    def _load(self, folder: Path, name: str, version: str) -> Served:
        inspector = load_model(folder, self.cfg)
        batcher = Batcher(inspector, self.cfg.serve.max_batch, self.cfg.serve.batch_wait_ms / 1000, self.on_batch)
        return Served(inspector, name, str(version), Path(folder), self.line, self.kind, batcher=batcher)

    def _fixed_identity(self, folder: Path) -> tuple[str, str]:
        """(name, version) to report: registry downloads live in <cache>/<name>/v<version>/..."""
        try:
            name, tag = Path(folder).resolve().relative_to(registry.cache_dir(self.cfg).resolve()).parts[:2]
            return name, tag.removeprefix("v")
        except ValueError:  # a plain model folder, not from the registry: name it by its last two parts
            return "/".join(Path(folder).resolve().parts[-2:]), "local"
