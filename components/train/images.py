"""Fused input pictures and model-frame targets for a list of samples, held in memory.

Decoding and fusing a 640 px pair costs ~10 ms; training revisits every board many
times, so each is fused once into a uint8 array (448 x 448 x 3 = 0.6 MB).
"""
from __future__ import annotations

import random

import numpy as np
import torch

from components.data.records import Sample
from components.model.fuse import Frame, fuse, image_size


class FusedSet:
    """Fused pictures, boxes (model frame) and class ids for boards and, optionally, templates
    (as negatives) and no-template copies (the board, or its template, fused with no template)."""

    def __init__(self, samples: list[Sample], classes: tuple[str, ...], size: int, template_share: float = 0.0,
                 seed: int = 0, no_template_share: float = 0.0):
        self.images: list[np.ndarray] = []
        self.boxes: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.is_template: list[bool] = []
        cls_id = {c: i for i, c in enumerate(classes)}
        rng = random.Random(seed)
        for s in samples:
            frame = Frame(*image_size(s.test_path), size)
            boxes = [frame.to_model((b.x1, b.y1, b.x2, b.y2)) for b in s.boxes]
            labels = [cls_id[b.cls] for b in s.boxes]
            self._add(fuse(s.test_path, s.template_path, size), boxes, labels, False)
            if no_template_share and rng.random() < no_template_share:
                # The board alone, and its template alone as a negative: without templates
                # the model must learn what a clean board looks like, not only defects.
                self._add(fuse(s.test_path, None, size), boxes, labels, False)
                if s.template_path:
                    self._add(fuse(s.template_path, None, size), [], [], True)
            if s.template_path and rng.random() < template_share:
                self._add(fuse(s.template_path, s.template_path, size), [], [], True)

    def _add(self, img, boxes, labels, is_template: bool) -> None:
        self.images.append(np.asarray(img, dtype=np.uint8))
        self.boxes.append(np.asarray(boxes, dtype=np.float32).reshape(-1, 4))
        self.labels.append(np.asarray(labels, dtype=np.int64))
        self.is_template.append(is_template)

    def __len__(self) -> int:
        return len(self.images)


def dihedral(img: np.ndarray, boxes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One of the 8 flips/rotations of a square picture, with its boxes moved along.

    PCB defects have no preferred orientation, so this multiplies the data by 8 for free.
    """
    size = img.shape[0]
    b = boxes.copy()
    if k & 1:  # horizontal flip
        img = img[:, ::-1]
        b[:, [0, 2]] = size - b[:, [2, 0]]
    if k & 2:  # vertical flip
        img = img[::-1]
        b[:, [1, 3]] = size - b[:, [3, 1]]
    if k & 4:  # transpose (swap x and y)
        img = img.transpose(1, 0, 2)
        b = b[:, [1, 0, 3, 2]]
    return np.ascontiguousarray(img), b


def batches(data: FusedSet, indices: list[int], batch: int, rng: random.Random, augment: bool):
    """Yield (uint8 images, boxes list, labels list) batches over the given indices once."""
    order = list(indices)
    rng.shuffle(order)
    for i in range(0, len(order) - batch + 1, batch):
        imgs, boxes, labels = [], [], []
        for j in order[i:i + batch]:
            img, bx = dihedral(data.images[j], data.boxes[j], rng.randrange(8) if augment else 0)
            imgs.append(img)
            boxes.append(torch.from_numpy(bx))
            labels.append(torch.from_numpy(data.labels[j]))
        yield np.stack(imgs), boxes, labels
