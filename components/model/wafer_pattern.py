"""The wafer line's pattern branch: a Qwen-VL vision tower over the bin map, and a head that
gives the distribution over the line's pattern labels from its patch grid.

The map is the model's picture: three channels, one per die state (failing, passing, on the
wafer), area-resized to a square so a failing-die density survives the resize. The pattern
is measured here, on the vision features, and the language model only refers to it
(components/qa/wafer_measure.py measures location, shape and counts from the map itself).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from transformers.models.qwen3_vl.configuration_qwen3_vl import Qwen3VLVisionConfig
from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLVisionModel

from components.data.wafer import FAIL, OUTSIDE, PASS
from components.model.patch_embed import as_matmul
from components.model.views import dihedral_maps
from components.model.vlm import patchify

MERGE = 2
"""Qwen-VL's spatial merge: the patch grid's side must be even."""
WEIGHTS_FILE, META_FILE = "pattern.pt", "pattern.json"


@dataclass
class PatternMeta:
    labels: list[str]
    input_size: int
    patch_size: int
    vision_hidden: int
    vision_depth: int
    vision_heads: int
    head_channels: int
    temperature: float = 1.0
    """Calibration: logits are divided by it (fitted on maps the branch did not train on)."""
    views: int = 1
    """How many of the 8 flips / quarter turns (views.dihedral_maps, in its order) the logits are
    averaged over: a wafer's pattern does not change when it is turned."""


def render(grid: np.ndarray, side: int) -> torch.Tensor:
    """(rows, cols) map of 0 / 128 / 255 -> (3, side, side) in [-1, 1]: failing, passing, on-wafer
    channels, each the share of the cell's area in that state (PIL's box filter: an area mean,
    exact for whole-number scales, within ~10 % of it for others)."""
    g = np.asarray(grid)
    planes = [(g == v).astype(np.float32) for v in (FAIL, PASS)] + [(g != OUTSIDE).astype(np.float32)]
    out = np.stack([np.asarray(Image.fromarray(p, mode="F").resize((side, side), Image.Resampling.BOX))
                    for p in planes])
    return torch.from_numpy(out) * 2 - 1


def render_batch(grids: list[np.ndarray], side: int) -> torch.Tensor:
    return torch.stack([render(g, side) for g in grids])


class PatternHead(nn.Module):
    """Conv trunk on the patch grid, then mean and max pooling: one logit per label."""

    def __init__(self, in_dim: int, n_labels: int, channels: int):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(in_dim, channels, 3, padding=1), nn.GELU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.GELU(),
        )
        self.out = nn.Linear(2 * channels, n_labels)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        x = self.trunk(grid)
        return self.out(torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1))


class WaferPattern(nn.Module):
    def __init__(self, meta: PatternMeta):
        super().__init__()
        if meta.input_size % (meta.patch_size * MERGE):
            raise ValueError(f"wafer.input_size {meta.input_size} must be a multiple of 2 x wafer.patch_size "
                             f"({meta.patch_size}): Qwen-VL merges 2 x 2 patches")
        self.meta = meta
        g = self.grid
        self.visual = Qwen3VLVisionModel(Qwen3VLVisionConfig(
            depth=meta.vision_depth, hidden_size=meta.vision_hidden, intermediate_size=4 * meta.vision_hidden,
            num_heads=meta.vision_heads, patch_size=meta.patch_size, spatial_merge_size=MERGE,
            temporal_patch_size=2, out_hidden_size=meta.vision_hidden, num_position_embeddings=g * g,
            deepstack_visual_indexes=[]))
        as_matmul(self.visual)
        self.head = PatternHead(meta.vision_hidden, len(meta.labels), meta.head_channels)

    @property
    def grid(self) -> int:
        return self.meta.input_size // self.meta.patch_size

    def patch_grid(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) rendered maps -> vision features before the merger, (B, C, g, g)."""
        b, g = x.shape[0], self.grid
        thw = torch.tensor([[1, g, g]] * b)
        out = self.visual(patchify(x, self.meta.patch_size), grid_thw=thw).last_hidden_state
        out = out.reshape(b, g // MERGE, g // MERGE, MERGE, MERGE, -1)
        return out.permute(0, 5, 1, 3, 2, 4).reshape(b, -1, g, g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Uncalibrated logits (B, labels) of one view."""
        return self.head(self.patch_grid(x))

    def view_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Uncalibrated logits (B, labels), the mean over meta.views views of each map."""
        return torch.stack([self(dihedral_maps(x, k)) for k in range(self.meta.views)]).mean(0)

    @torch.no_grad()
    def probabilities(self, grids: list[np.ndarray], batch: int = 256) -> torch.Tensor:
        """Calibrated label distribution (N, labels) for raw maps."""
        self.eval()
        side, t = self.meta.input_size, self.meta.temperature
        out = [torch.softmax(self.view_logits(render_batch(grids[i:i + batch], side)) / t, 1)
               for i in range(0, len(grids), batch)]
        return torch.cat(out) if out else torch.zeros(0, len(self.meta.labels))

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), folder / WEIGHTS_FILE)
        (folder / META_FILE).write_text(json.dumps(asdict(self.meta), indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> WaferPattern:
        folder = Path(folder)
        if not (folder / META_FILE).exists():
            raise FileNotFoundError(f"{folder}: not a wafer pattern model folder (no {META_FILE})")
        model = cls(PatternMeta(**json.loads((folder / META_FILE).read_text())))
        model.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location="cpu"))
        return model.eval()
