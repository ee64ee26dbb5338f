"""Build the embedded default model (a small Qwen3-VL from config) or load a local checkpoint.

Both paths return the same pair (model, processor), so everything downstream is one
code path. Nothing here touches a hub: the tokenizer and processor are made offline.
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    Qwen2VLImageProcessor,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLProcessor,
)

from components.config import Config
from components.model.tokenizer import build_tokenizer


def chat_template() -> str:
    """Qwen3-VL's own chat template, as trl stores it (so trl recognises it for training)."""
    from trl.chat_template_utils import qwen3_vl_chat_template

    return qwen3_vl_chat_template


def build_processor(cfg: Config) -> Qwen3VLProcessor:
    """Tokenizer + image processor with min = max pixels = the fused input size (no resizing)."""
    from transformers import Qwen3VLVideoProcessor

    m = cfg.model
    tok = build_tokenizer(cfg.data.classes, cfg.line.words, m.max_regions, chat_template(), cfg.line.items)
    pixels = m.input_size * m.input_size
    size = {"shortest_edge": pixels, "longest_edge": pixels}
    image_proc = Qwen2VLImageProcessor(patch_size=m.patch_size, merge_size=2, temporal_patch_size=2, size=size,
                                       image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    video_proc = Qwen3VLVideoProcessor(patch_size=m.patch_size, merge_size=2, temporal_patch_size=2, size=size)
    return Qwen3VLProcessor(image_processor=image_proc, tokenizer=tok, video_processor=video_proc,
                            chat_template=tok.chat_template)


def build_config(cfg: Config, processor: Qwen3VLProcessor) -> Qwen3VLConfig:
    """A small Qwen3-VL: the vision output width must equal the text width, and the
    multimodal rotary sections (t, h, w) must add up to head_dim / 2."""
    m, tok = cfg.model, processor.tokenizer
    head_dim = m.text_hidden // m.text_heads
    half = head_dim // 2
    mrope = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]
    grid = m.input_size // m.patch_size
    return Qwen3VLConfig(
        text_config=dict(
            vocab_size=len(tok), hidden_size=m.text_hidden, intermediate_size=4 * m.text_hidden,
            num_hidden_layers=m.text_layers, num_attention_heads=m.text_heads, num_key_value_heads=m.text_heads,
            head_dim=head_dim, max_position_embeddings=2048, pad_token_id=tok.pad_token_id,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope, "mrope_interleaved": True},
        ),
        vision_config=dict(
            depth=m.vision_depth, hidden_size=m.vision_hidden, intermediate_size=4 * m.vision_hidden,
            num_heads=m.vision_heads, patch_size=m.patch_size, spatial_merge_size=2, temporal_patch_size=2,
            out_hidden_size=m.text_hidden, num_position_embeddings=grid * grid, deepstack_visual_indexes=[],
        ),
        image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"),
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
    )


def build(cfg: Config):
    """(model, processor): the small default from config, or cfg.model.base loaded from a folder."""
    torch.manual_seed(cfg.train.seed)
    if cfg.model.base:
        base = Path(cfg.model.base)
        if not base.is_dir():
            raise FileNotFoundError(f"model.base={base}: not a local folder (no hub access here)")
        processor = AutoProcessor.from_pretrained(base, local_files_only=True)
        model = AutoModelForImageTextToText.from_pretrained(base, local_files_only=True, dtype=torch.float32)
        return model, processor
    processor = build_processor(cfg)
    model = Qwen3VLForConditionalGeneration(build_config(cfg, processor))
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    return model, processor
