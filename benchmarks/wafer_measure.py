"""What the wafer-map measurements say per labelled pattern: for a random sample of maps of an
.npz drop, how often each label's maps are measured at each location and as each shape.

    .venv/bin/python benchmarks/wafer_measure.py --data ../shared/data/wm811k/val.npz --maps 3000
"""
from __future__ import annotations

import argparse
import random
from collections import Counter, defaultdict
from pathlib import Path

from components.data.wafer import read_npz
from components.qa.wafer_measure import measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="an .npz wafer drop")
    parser.add_argument("--maps", type=int, default=3000, help="random maps to measure (0 = all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    maps = read_npz(args.data)
    random.Random(args.seed).shuffle(maps)
    by: dict[str, tuple[Counter, Counter]] = defaultdict(lambda: (Counter(), Counter()))
    for m in maps[: args.maps or None]:
        x = measure(m.grid)
        by[m.label][0][x.location] += 1
        by[m.label][1][x.morphology] += 1
    print("| label | maps | location (most common) | shape (most common) |\n|---|---|---|---|")
    for label, (where, shape) in sorted(by.items()):
        top = lambda c: ", ".join(f"{k} {v}" for k, v in c.most_common(3))  # noqa: E731
        print(f"| {label} | {sum(where.values())} | {top(where)} | {top(shape)} |")


if __name__ == "__main__":
    main()
