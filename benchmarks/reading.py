"""How a model reads every held-out question wording (components/evaluation/heldout_questions.yaml):
each asked about a few held-out boards as served, the share read right per kind and the
questions most often misread.

    .venv/bin/python benchmarks/reading.py --model .defectqa/runs/<run>/quantize/model \\
        --data ../shared/data/deeppcb --boards 2 [--out reading.jsonl]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from misreads import summarize

from components.config import load
from components.data.split import split_samples
from components.evaluation.questions import every_question
from components.evaluation.reading import read_every
from components.evaluation.run import samples_of
from components.model.inference import Inspector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a model folder")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/deeppcb"), help="DeepPCB-layout folder")
    parser.add_argument("--boards", type=int, default=2, help="held-out boards each wording is asked about")
    parser.add_argument("--out", type=Path, help="write one JSON line per question here")
    parser.add_argument("--top", type=int, default=25, help="how many misread questions to list")
    args = parser.parse_args()
    cfg = load(None)
    held_out = split_samples(samples_of(args.data, cfg), cfg)["eval"][: args.boards]
    inspector = Inspector.load(args.model)
    pairs = [(s.test_path, s.template_path) for s in held_out]
    rows = read_every(inspector, pairs, every_question(tuple(cfg.data.classes), cfg.line))
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summarize(rows, args.top)


if __name__ == "__main__":
    main()
