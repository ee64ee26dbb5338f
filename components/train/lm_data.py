"""Rows for the language model's SFT and DPO: the image, the region list, the question,
and answers in reference form (which regions answer the question, with which class).

Regions come from the trained spatial branch run over the training boards, so the
language model learns on the candidates it will really see, false alarms included.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image

from components.data.records import Sample
from components.model.regions import descriptors, match_regions, prompt_text, propose
from components.qa.generate import PreferencePair, QAPair
from components.qa.grammar import NO, YES, Detection, Reading, to_scan


@dataclass
class RegionView:
    """One picture as the language model sees it."""
    image: Image.Image | str
    """The fused picture, or the path of its PNG (so datasets need not re-encode it)."""
    size: tuple[int, int]
    """Original board size, for the quadrant words."""
    regions: list[Detection]
    gt_to_region: dict[int, int]


def decisions_for(qa: QAPair, view: RegionView) -> list[str]:
    """Per region covering a defect in the asked area (qa.scan_truth, any class): [YES] when the
    region's class is right, else the true class (a re-classification); [NO] for every other
    region. The asked classes are picked from these by the answer, not by the decisions."""
    scanned = dict(qa.scan_truth)
    region_to_gt = {r: g for g, r in view.gt_to_region.items()}
    out = []
    for k, region in enumerate(view.regions):
        true = scanned.get(region_to_gt.get(k, -1))
        out.append(NO if true is None else YES if true == region.cls else true)
    return out


def _scan(qa: QAPair, view: RegionView, decisions: list[str]) -> str:
    return to_scan(qa.reading, descriptors(view.regions, view.size, qa.reading), decisions)


def scan_target(qa: QAPair, view: RegionView) -> str:
    return _scan(qa, view, decisions_for(qa, view))


def scan_rejected(pref: PreferencePair, view: RegionView, classes: tuple[str, ...], rng: random.Random) -> str | None:
    """A wrong scan of the kind the preference pair names: an invented defect (a [NO] region
    reported), a misplaced one (reported on the wrong region), a missed one, or a confident
    wrong class. None when the view has no region to make that mistake on."""
    if pref.qa.reading.off:
        return None
    dec = decisions_for(pref.qa, view)
    yes = [k for k, d in enumerate(dec) if d != NO]
    no = [k for k, d in enumerate(dec) if d == NO]
    reason = pref.reason
    if reason != "invented" and not yes:
        reason = "invented"
    if reason == "invented" or (reason == "wrong_location" and not no):
        if not no:
            return None
        dec[rng.choice(no)] = YES
    elif reason == "wrong_location":
        k, j = rng.choice(yes), rng.choice(no)
        dec[j], dec[k] = dec[k], NO
    elif reason == "missed":
        dec[rng.choice(yes)] = NO
    else:
        k = rng.choice(yes)
        right = view.regions[k].cls if dec[k] == YES else dec[k]
        dec[k] = rng.choice([c for c in classes if c != right])
    return _scan(pref.qa, view, dec)


def _prompt(question: str, words: set[str] | None) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt_text(question, words)}]}]


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


def sft_rows(pairs: list[QAPair], views: dict[tuple[str, str], RegionView], words: set[str] | None = None) -> list[dict]:
    """prompt-completion rows for trl's SFTTrainer (completion-only loss); words: the tokenizer's
    known words (`tokenizer.plain_words`), for the same normalisation as at inference."""
    rows = []
    for qa in pairs:
        view = views.get((qa.sample_id, qa.source))
        if view is not None:
            rows.append({"images": [view.image], "prompt": _prompt(qa.question, words),
                         "completion": _assistant(scan_target(qa, view))})
    return rows


def reading_rows(questions: list[tuple[str, Reading]], words: set[str] | None = None) -> list[dict]:
    """Rows of a question and its reading alone: the scan of a view with no region."""
    return [{"prompt": _prompt(q, words), "completion": _assistant(to_scan(reading, [], []))} for q, reading in questions]


def dpo_rows(prefs: list[PreferencePair], views: dict[tuple[str, str], RegionView], classes: tuple[str, ...],
             seed: int, words: set[str] | None = None) -> list[dict]:
    """prompt / chosen / rejected rows for trl's DPOTrainer."""
    rng = random.Random(seed)
    rows = []
    for p in prefs:
        view = views.get((p.qa.sample_id, p.qa.source))
        rejected = None if view is None else scan_rejected(p, view, classes, rng)
        if rejected is not None:
            rows.append({"images": [view.image], "prompt": _prompt(p.qa.question, words),
                         "chosen": _assistant(scan_target(p.qa, view)), "rejected": _assistant(rejected)})
    return rows


def region_views(vlm, samples: list[Sample], size: int, iou_min: float, templates: bool = True,
                 batch: int = 16, picture_dir=None) -> dict[tuple[str, str], RegionView]:
    """Run the spatial branch over boards (and templates) once; key = (sample_id, source).

    With picture_dir, fused pictures are saved there as PNG and views hold their paths.
    """
    import numpy as np
    from tqdm import tqdm

    from components.model.fuse import Frame, fuse, image_size

    jobs = [(s, "test", s.test_path, s.template_path) for s in samples]
    if templates:
        jobs += [(s, "template", s.template_path, s.template_path) for s in samples if s.template_path]
    views = {}
    for i in tqdm(range(0, len(jobs), batch), desc="region proposals", unit="batch"):
        chunk = jobs[i:i + batch]
        imgs = [fuse(img, tmpl, size) for _, _, img, tmpl in chunk]
        frames = [Frame(*image_size(img), size) for _, _, img, _ in chunk]
        regions = propose(vlm, np.stack([np.asarray(im) for im in imgs]), frames)
        for (s, src, *_), im, regs, frame in zip(chunk, imgs, regions, frames, strict=True):
            gt = s.boxes if src == "test" else []
            picture = im if picture_dir is None else _save(im, picture_dir, f"{s.sample_id}_{src}.png")
            views[(s.sample_id, src)] = RegionView(picture, (frame.width, frame.height), regs, match_regions(regs, gt, iou_min))
    return views


def save_views(views: dict[tuple[str, str], RegionView], path) -> None:
    """Persist views (pictures must already be saved paths) as JSON beside the model."""
    import json
    from pathlib import Path

    rows = [{"id": sid, "source": src, "picture": v.image, "size": list(v.size),
             "regions": [[d.cls, list(d.box), d.conf] for d in v.regions],
             "gt_to_region": {str(k): r for k, r in v.gt_to_region.items()}} for (sid, src), v in views.items()]
    Path(path).write_text(json.dumps(rows))


def load_views(path) -> dict[tuple[str, str], RegionView]:
    import json
    from pathlib import Path

    views = {}
    for r in json.loads(Path(path).read_text()):
        regions = [Detection(c, tuple(b), conf) for c, b, conf in r["regions"]]
        views[(r["id"], r["source"])] = RegionView(r["picture"], tuple(r["size"]), regions,
                                                   {int(k): v for k, v in r["gt_to_region"].items()})
    return views


def _save(img: Image.Image, folder, name: str) -> str:
    from pathlib import Path

    Path(folder).mkdir(parents=True, exist_ok=True)
    path = Path(folder) / name
    img.save(path, compress_level=1)
    return str(path)
