"""Why questions answer "none found" while the asked class or area has a defect: the question
was misread, declined as off topic, or read right and the defect missed.

    .venv/bin/python benchmarks/false_none.py RUN/eval/int8/questions.jsonl
Counts per cause and kind, then examples (board, question, the true classes it asks about).
"""
from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

from components.evaluation.questions import same_reading
from components.qa.generate import reading_from_json


def cause(row: dict) -> str:
    if row["out_of_scope"]:
        return "declined"
    read = reading_from_json(row["read"]) if row["read"] else None
    return "missed" if same_reading(read, reading_from_json(row["asked"])) else "misread"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", type=Path, help="a questions.jsonl of `defectqa evaluate --export`")
    parser.add_argument("--examples", type=int, default=10, help="examples shown per cause")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.questions.read_text().splitlines() if line]
    scoped = [r for r in rows if r["truth"] and not r["asked"].get("off")]
    none = [r for r in scoped if not r["detections"]]
    print(f"false none: {len(none)} of {len(scoped)} questions ({len(none) / max(1, len(scoped)):.4f})")
    causes = [cause(r) for r in none]
    for (c, kind), n in sorted(collections.Counter(zip(causes, (r["kind"] for r in none), strict=True)).items()):
        print(f"  {c:9s} {kind:12s} {n}")
    for c in sorted(set(causes)):
        print(f"{c}:")
        for r in [r for r, rc in zip(none, causes, strict=True) if rc == c][: args.examples]:
            print(f"  {r['image_id']}  {r['question']!r}  truth: {[t['class'] for t in r['truth']]}")


if __name__ == "__main__":
    main()
