"""How the model reads every held-out wording (heldout_questions.yaml), not a sample of them:
each question asked about the same boards, the reading the model writes compared with what
the question asks. Rows have the shape of questions.jsonl (kind, question, asked, read), so
benchmarks/misreads.py lists what is misread.
"""
from __future__ import annotations

from tqdm import tqdm

from components.evaluation.questions import SuiteQuestion, same_reading
from components.qa.generate import reading_to_json


def read_every(inspector, boards: list[tuple], questions: list[SuiteQuestion], batch: int = 64) -> list[dict]:
    """One row per (board, question): boards are (image, template-or-None) pairs."""
    rows = []
    with tqdm(total=len(boards) * len(questions), desc="reading", unit="question") as bar:
        for image, template in boards:
            for i in range(0, len(questions), batch):
                chunk = questions[i:i + batch]
                for q, res in zip(chunk, inspector.ask_many(image, template, [q.question for q in chunk]), strict=True):
                    read = res.answer.asked
                    rows.append({"kind": q.kind, "question": q.question, "asked": reading_to_json(q.reading),
                                 "read": None if read is None else reading_to_json(read),
                                 "right": same_reading(read, q.reading)})
                bar.update(len(chunk))
    return rows


def accuracy(rows: list[dict]) -> dict[str, float]:
    """Share read right, over all rows and per kind."""
    kinds = sorted({r["kind"] for r in rows})
    out = {"all": sum(r["right"] for r in rows) / len(rows)}
    for k in kinds:
        sel = [r["right"] for r in rows if r["kind"] == k]
        out[k] = sum(sel) / len(sel)
    return out
