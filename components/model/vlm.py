"""DefectVLM: a Qwen-VL model plus its spatial branch, saved and loaded as one folder.

Folder layout (the registered artifact):
    config.json, model.safetensors, processor + tokenizer files   (transformers)
    spatial_head.pt        the heatmap head's weights
    defectqa.json          classes, input size, region settings, quantization, calibration
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from components.model.patch_embed import as_matmul
from components.model.spatial_head import SpatialHead
from components.model.views import dihedral_maps, undo_dihedral

META_FILE = "defectqa.json"
HEAD_FILE = "spatial_head.pt"
REFINER_FILE = "refiner.pt"


@dataclass
class Meta:
    classes: list[str]
    input_size: int
    patch_size: int
    max_regions: int
    region_floor: float
    head_channels: int
    calibration: dict = field(default_factory=lambda: {"a": 1.0, "b": 0.0})
    """Platt scaling of the head score: conf = sigmoid(a * logit(score) + b)."""
    calibration_no_template: dict = field(default_factory=lambda: {"a": 1.0, "b": 0.0})
    """The same for boards asked without a template (no-template mode), fitted apart: the
    model is far less sure there, and one fit for both would mis-state each."""
    quantize: str = "none"
    """'int8' = dynamic int8 Linear layers applied at load time (the served model)."""
    dataset_version: str = ""
    words: dict = field(default_factory=dict)
    """The line's class words (lines/<line>.yaml `words`) its answers name classes by; empty in
    models saved before a model carried them: the default line's."""
    items: list = field(default_factory=list)
    """What the line calls the thing inspected (`items`); empty: the default line's."""
    refiner: dict = field(default_factory=dict)
    """Refiner settings (floor, crop, context, topology, ...); empty = no refinement stage (head
    scores only). Models saved before a setting existed lack it: its old behaviour applies."""
    tta_views: int = 1
    """Test-time augmentation of the spatial branch: its maps averaged over this many of the 8
    flips/rotations of the picture (1: none; 2: + horizontal flip; 4: + vertical flips; 8: all)."""


def patchify(images: torch.Tensor, patch: int, merge: int = 2, temporal: int = 2) -> torch.Tensor:
    """(B, 3, H, W) normalised images -> Qwen-VL's flat patch rows, image after image.

    Same layout as Qwen2VLImageProcessor: a still picture is repeated over the
    temporal patch, and rows run merge-block by merge-block (t, h/m, w/m, m, m).
    """
    b, c, h, w = images.shape
    x = images[:, None].expand(b, temporal, c, h, w)
    x = x.reshape(b, 1, temporal, c, h // patch // merge, merge, patch, w // patch // merge, merge, patch)
    x = x.permute(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)
    return x.reshape(b * (h // patch) * (w // patch), c * temporal * patch * patch)


def normalise(uint8_hwc: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [-1, 1] (Qwen3-VL's mean/std 0.5)."""
    x = torch.as_tensor(np.array(uint8_hwc, copy=True) if isinstance(uint8_hwc, np.ndarray)
                        else uint8_hwc).permute(0, 3, 1, 2).float() / 255.0
    return (x - 0.5) / 0.5


class DefectVLM(nn.Module):
    def __init__(self, model, processor, meta: Meta):
        super().__init__()
        self.model, self.processor, self.meta = model, processor, meta
        as_matmul(model.model.visual)
        vis = model.config.vision_config
        self.head = SpatialHead(vis.hidden_size, len(meta.classes), meta.head_channels)
        self.refiner = None
        if meta.refiner:
            from components.model.refiner import Refiner

            # Models saved before max_side was configurable used 96.
            self.refiner = Refiner(len(meta.classes), crop=meta.refiner["crop"], context=meta.refiner["context"],
                                   max_side=meta.refiner.get("max_side", 96.0),
                                   topology=meta.refiner.get("topology", False))

    @property
    def grid(self) -> int:
        return self.meta.input_size // self.meta.patch_size

    @property
    def stride(self) -> float:
        return float(self.meta.patch_size)

    def grid_thw(self, batch: int) -> torch.Tensor:
        return torch.tensor([[1, self.grid, self.grid]] * batch)

    def patch_grid(self, pixel_values: torch.Tensor, batch: int) -> torch.Tensor:
        """Vision-encoder patch features before the merger, as a (B, C, H, W) grid."""
        out = self.model.model.visual(pixel_values, grid_thw=self.grid_thw(batch))
        g, m = self.grid, 2
        h = out.last_hidden_state.reshape(batch, g // m, g // m, m, m, -1)
        return h.permute(0, 5, 1, 3, 2, 4).reshape(batch, -1, g, g)

    def spatial(self, images_uint8, views: int | None = None) -> dict[str, torch.Tensor]:
        """Head outputs for a batch of fused (B, H, W, 3) uint8 pictures, and under "pictures"
        the normalised input (B, 3, H, W), which the refiner crops from. views (default
        meta.tta_views): the maps are the mean over that many flips/rotations of the pictures,
        each mapped back to the picture's own frame (one vision call for all)."""
        x = normalise(images_uint8)
        views = views or self.meta.tta_views
        if not 1 <= views <= 8:
            raise ValueError(f"tta_views must be 1..8 (of the 8 flips/rotations), got {views}")
        if views == 1:
            return {**self.head(self.patch_grid(patchify(x, self.meta.patch_size), x.shape[0])), "pictures": x}
        b = x.shape[0]
        seen = torch.cat([dihedral_maps(x, k) for k in range(views)])
        out = self.head(self.patch_grid(patchify(seen, self.meta.patch_size), seen.shape[0]))
        views_out = [undo_dihedral({key: v[k * b:(k + 1) * b] for key, v in out.items()}, k) for k in range(views)]
        maps = {key: torch.stack([v[key] for v in views_out]).mean(0) for key in out}
        return {**maps, "pictures": x}

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        self.processor.save_pretrained(folder)
        torch.save(self.head.state_dict(), folder / HEAD_FILE)
        if self.refiner is not None:
            torch.save(self.refiner.state_dict(), folder / REFINER_FILE)
        (folder / META_FILE).write_text(json.dumps(self.meta.__dict__, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path, quantize: bool | None = None) -> DefectVLM:
        """Load a saved folder; int8 Linear layers when its meta (or `quantize`) says so."""
        from transformers import AutoModelForImageTextToText, AutoProcessor

        folder = Path(folder)
        if not (folder / META_FILE).exists():
            raise FileNotFoundError(f"{folder}: not a defectqa model folder (no {META_FILE})")
        meta = Meta(**json.loads((folder / META_FILE).read_text()))
        processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
        model = AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
        vlm = cls(model, processor, meta)
        vlm.head.load_state_dict(torch.load(folder / HEAD_FILE, map_location="cpu"))
        if vlm.refiner is not None:
            vlm.refiner.load_state_dict(torch.load(folder / REFINER_FILE, map_location="cpu"))
        vlm.eval()
        if quantize if quantize is not None else meta.quantize == "int8":
            from components.model.int8 import quantize_int8

            quantize_int8(vlm)
        return vlm
