"""Seconds per spatial training step (default config, random pictures) and, with --model, per
board of the question suite asked in one batch (`Inspector.ask_many`) on a held-out board.

    .venv/bin/python benchmarks/step_time.py [--model .defectqa/runs/<run>/quantize/model] [--steps 8]
Run it on an idle machine: it times the CPU, whatever else runs.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from components.config import load
from components.evaluation.questions import suite
from components.model.spatial_head import build_targets, head_loss
from components.train.spatial import trainable
from components.train.stages import new_model


def spatial_step_s(steps: int) -> float:
    cfg = load("params.yaml")
    torch.set_num_threads(cfg.train.threads)
    vlm = new_model(cfg)
    size, batch = cfg.model.input_size, cfg.train.spatial_batch
    imgs = np.random.default_rng(0).integers(0, 255, (batch, size, size, 3), dtype=np.uint8)
    boxes, labels = [torch.tensor([[10.0, 10.0, 40.0, 40.0]])] * batch, [torch.tensor([0])] * batch
    opt = torch.optim.AdamW(trainable(vlm), lr=cfg.train.spatial_lr)
    vlm.train()
    times = []
    for _ in range(steps + 2):  # the first two warm the allocator up
        start = time.perf_counter()
        tgt = build_targets(boxes, labels, len(vlm.meta.classes), (vlm.grid, vlm.grid), vlm.stride)
        loss = head_loss(vlm.spatial(imgs), tgt)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:])


def suite_board_s(model: Path, data: Path, boards: int) -> float:
    from components.model.inference import Inspector

    cfg = load("params.yaml")
    inspector = Inspector.load(model)
    tests = sorted(data.glob("group92000/92000/*_test.jpg"))[:boards]
    times = []
    for k, test in enumerate([tests[0], *tests]):
        questions = [q.question for q in suite(test.stem, [], tuple(cfg.data.classes), cfg.eval.suite_seed, cfg.line)]
        start = time.perf_counter()
        inspector.ask_many(test, str(test).replace("_test.jpg", "_temp.jpg"), questions)
        if k:  # the first is a warm-up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="spatial steps to time")
    parser.add_argument("--model", type=Path, help="also time the question suite on this model folder")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/deeppcb"), help="DeepPCB folder")
    parser.add_argument("--boards", type=int, default=5, help="held-out boards to time the suite on")
    args = parser.parse_args()
    print(f"spatial step (batch of the config): {spatial_step_s(args.steps):.2f} s")
    if args.model:
        print(f"question suite, one board: {suite_board_s(args.model, args.data, args.boards):.2f} s")


if __name__ == "__main__":
    main()
