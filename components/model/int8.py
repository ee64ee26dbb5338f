"""int8 for CPU serving: dynamic quantization of the language model's Linear layers, applied
when a model whose meta says `quantize: int8` is loaded (the quantize stage writes that meta).

The vision tower and its spatial head stay fp32: dynamic int8 picks one activation scale
per call, so a quantized vision tower would make a board's regions (its boxes) depend on
whichever other boards share its batch in the service. The language model is ~80 % of
the weights and most of the decoding time, so that is where int8 pays.

Weights are stored in fp32 and quantized at load time (deterministic), because a
dynamically quantized transformers model cannot be re-saved with save_pretrained.
The artifact's meta says `quantize: int8`, so whoever loads it serves the int8 model.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn


def quantize_int8(vlm) -> None:
    """Replace the language model's Linear layers (and the output head) with dynamic int8 ones."""
    inner = vlm.model.model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inner.language_model = torch.ao.quantization.quantize_dynamic(inner.language_model, {nn.Linear},
                                                                      dtype=torch.qint8)
        vlm.model.lm_head = torch.ao.quantization.quantize_dynamic(
            nn.Sequential(vlm.model.lm_head), {nn.Linear}, dtype=torch.qint8)[0]
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
