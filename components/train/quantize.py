"""Stage 4: int8 for CPU serving — dynamic quantization of every Linear layer.

Weights are stored in fp32 and quantized at load time (deterministic), because a
dynamically quantized transformers model cannot be re-saved with save_pretrained.
The artifact's meta says `quantize: int8`, so whoever loads it serves the int8 model.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn


def quantize_int8(vlm) -> None:
    """Replace the Linear layers of the Qwen-VL model with dynamic int8 ones, in place."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vlm.model = torch.ao.quantization.quantize_dynamic(vlm.model, {nn.Linear}, dtype=torch.qint8)
    vlm.model.eval()


def size_mb(module: nn.Module) -> float:
    """Parameter + buffer bytes, counting packed int8 weights through state_dict."""
    total = 0
    for v in module.state_dict().values():
        if isinstance(v, torch.Tensor):
            total += v.numel() * v.element_size()
        elif isinstance(v, tuple):
            total += sum(t.numel() * t.element_size() for t in v if isinstance(t, torch.Tensor))
    return total / 1e6
