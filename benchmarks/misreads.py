"""Which questions the model reads wrongly: per kind, the share read right, then the questions
most often misread with what the model read (from an evaluation's questions.jsonl).

    .venv/bin/python benchmarks/misreads.py .defectqa/runs/<run>/eval/int8/questions.jsonl [--top 20]
"""
from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path


def same(asked: dict, read: dict) -> bool:
    if asked["off"] or read["off"]:
        return asked["off"] == read["off"]
    return (set(asked["classes"]), asked["count"], asked["area"]) == (set(read["classes"]), read["count"], read["area"])


def reading(read: dict) -> str:
    if read["off"]:
        return "off topic"
    return f"{'+'.join(read['classes']) or 'all'} {'count' if read['count'] else 'list'} {read['area']}"


def summarize(rows: list[dict], top: int = 20) -> None:
    """Print the share read right per kind, then the `top` questions most often misread."""
    right: dict[str, list[bool]] = defaultdict(list)
    missed, asked = Counter(), Counter()
    for r in rows:
        ok = r["read"] is not None and same(r["asked"], r["read"])
        right[r["kind"]].append(ok)
        asked[r["question"].lower()] += 1
        if not ok:
            missed[(r["kind"], r["question"].lower(), reading(r["read"]) if r["read"] else "unreadable")] += 1
    print(f"{len(rows)} questions, {sum(missed.values())} misread: read right {1 - sum(missed.values()) / len(rows):.4f}")
    for kind, flags in sorted(right.items()):
        print(f"  {kind:<14} read right {sum(flags) / len(flags):.3f} of {len(flags)}")
    for (kind, question, read), n in missed.most_common(top):
        print(f"{n:>4} of {asked[question]:<4} {kind:<12} {question!r} read as {read}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", type=Path, help="questions.jsonl of an evaluation")
    parser.add_argument("--top", type=int, default=20, help="how many misread questions to list")
    args = parser.parse_args()
    summarize([json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()], args.top)


if __name__ == "__main__":
    main()
