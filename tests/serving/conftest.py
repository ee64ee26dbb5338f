"""A registry whose pcb and wafer lines each have a champion: the tiny PCB model and the tiny wafer model."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from components.data.wafer import WaferMap, read_npz, write_png
from components.registry import registry, tracking
from tests.conftest import tiny_cfg, wm811k_root


@dataclasses.dataclass(frozen=True)
class TwoLines:
    pcb: object
    """The pcb line's config (the tiny model's), its champion version 1 of the tiny PCB model."""
    wafer: object
    """The wafer line's config, the same registry: its champion version 1 of the tiny wafer model."""
    wafer_dir: Path
    """The wafer champion's model folder as trained."""
    maps: list[WaferMap]
    """Real WM-811K val maps, one per label, written as map PNGs at `png`."""
    png: dict[str, Path]
    """map_id -> its three-grey-level PNG."""

    def other_lines(self) -> dict:
        return {self.wafer.line.name: self.wafer}


def _register(cfg, model_dir: Path, metrics: dict) -> str:
    run_id = tracking.start_run(cfg, "serve-test")
    return registry.register_candidate(cfg, run_id, model_dir, metrics, "test")


@pytest.fixture(scope="session")
def two_lines(tmp_path_factory, tiny_model, wafer_model) -> TwoLines:
    work = tmp_path_factory.mktemp("serve-two-lines")
    pcb = tiny_cfg(work)
    pcb.serve.reload_interval_s = 0.2
    wafer_cfg, _, wafer_dir = wafer_model
    wafer = dataclasses.replace(wafer_cfg, paths=dataclasses.replace(wafer_cfg.paths, workdir=str(work)),
                                serve=dataclasses.replace(pcb.serve))
    registry.promote(pcb, _register(pcb, tiny_model.model("quantize"), {"f1_iou33": 0.5}))
    registry.promote(wafer, _register(wafer, wafer_dir, {"macro_f1": 0.5}))
    seen, maps = set(), []
    for m in read_npz(wm811k_root() / "val.npz"):
        if m.label not in seen:
            seen.add(m.label)
            maps.append(m)
    folder = work / "maps"
    folder.mkdir()
    png = {}
    for m in maps:
        png[m.map_id] = folder / f"{m.map_id}.png"
        write_png(m, png[m.map_id])
    return TwoLines(pcb, wafer, wafer_dir, maps, png)


def noise_png(path: Path, size: tuple[int, int] = (40, 40)) -> Path:
    """An RGB noise image: no bin map."""
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8), "RGB").save(path)
    return path
