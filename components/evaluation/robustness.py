"""Robustness: the same evaluation under Gaussian noise, blur, a brightness change and JPEG
compression (one severity each, from EvalConfig), reported per perturbation.

Only the picture asked about is perturbed, never the template it is compared with. On
the line the template is a golden reference captured once under controlled conditions
and stored; the board under test is what the camera sees today, through noise, focus,
lighting and the compression of the image pipeline. Perturbing both alike would also
cancel most of the change in the |board - template| channel, hiding exactly the
failure (spurious differences) an inspector meets. Templates asked as defect-free
boards get the same treatment: the perturbed copy is compared with the clean reference,
so template_false_alarm measures false alarms under the perturbation.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from components.config import EvalConfig
from components.data.records import Sample
from components.evaluation.columns import headline
from components.evaluation.metrics import compute_metrics
from components.model.answers import run_inspector

Perturbation = Callable[[str | Path | Image.Image], Image.Image]


def _open(image: str | Path | Image.Image) -> Image.Image:
    img = image if isinstance(image, Image.Image) else Image.open(image)
    return img if img.mode in ("L", "RGB") else img.convert("RGB")


def gaussian_noise(std: float, seed: int = 0) -> Perturbation:
    """Additive Gaussian noise of `std` grey levels; the same noise for a given image size (reproducible)."""
    def apply(image):
        img = _open(image)
        x = np.asarray(img, dtype=np.float32)
        noise = np.random.default_rng(seed).normal(0.0, std, x.shape).astype(np.float32)
        return Image.fromarray(np.clip(x + noise, 0, 255).round().astype(np.uint8), mode=img.mode)
    return apply


def gaussian_blur(sigma: float) -> Perturbation:
    """Gaussian blur (PIL's radius is the kernel's standard deviation)."""
    return lambda image: _open(image).filter(ImageFilter.GaussianBlur(radius=sigma))


def brightness(factor: float) -> Perturbation:
    """Brightness scaled by `factor` (1 = unchanged), clipped to the grey range."""
    return lambda image: ImageEnhance.Brightness(_open(image)).enhance(factor)


def jpeg(quality: int) -> Perturbation:
    """Re-encoded as JPEG at `quality`, then decoded."""
    def apply(image):
        buf = io.BytesIO()
        _open(image).save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        out = Image.open(buf)
        out.load()
        return out
    return apply


def perturbations(cfg: EvalConfig) -> dict[str, tuple[float, Perturbation]]:
    """Name -> (severity, perturbation) at the severities of cfg."""
    return {
        "noise": (cfg.robust_noise_std, gaussian_noise(cfg.robust_noise_std)),
        "blur": (cfg.robust_blur_sigma, gaussian_blur(cfg.robust_blur_sigma)),
        "brightness": (cfg.robust_brightness, brightness(cfg.robust_brightness)),
        "jpeg": (float(cfg.robust_jpeg_quality), jpeg(cfg.robust_jpeg_quality)),
    }


def evaluate_robustness(inspector, samples: Iterable[Sample], cfg: EvalConfig, classes: tuple[str, ...],
                        templates_as_input: bool = True) -> dict[str, dict[str, float]]:
    """{perturbation name: headline metrics + its "severity"} of the inspector on samples.

    Accuracy figures; the latencies in them are the batched ones (a perturbation does
    not change the model's work).
    """
    samples = list(samples)
    out = {}
    for name, (severity, fn) in perturbations(cfg).items():
        results = run_inspector(inspector, samples, cfg, desc=f"robustness: {name}", perturb=fn,
                                templates_as_input=templates_as_input)
        out[name] = {"severity": severity, **headline(compute_metrics(results, cfg, classes))}
    return out
