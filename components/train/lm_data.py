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
from components.qa.generate import PreferencePair, QAPair
from components.qa.grammar import Answer, Detection, to_refs
from components.model.regions import match_regions, prompt_text


@dataclass
class RegionView:
    """One picture as the language model sees it."""
    image: Image.Image | str
    """The fused picture, or the path of its PNG (so datasets need not re-encode it)."""
    size: tuple[int, int]
    """Original board size, for the quadrant words."""
    regions: list[Detection]
    gt_to_region: dict[int, int]


def ref_target(answer: Answer, gt_index: list[int], view: RegionView) -> str:
    """Reference form of a ground-truth answer, keeping only defects some region covers,
    listed in region order (the order the model reads them in)."""
    kept = sorted((view.gt_to_region[i], d) for i, d in zip(gt_index, answer.detections) if i in view.gt_to_region)
    ans = Answer([d for _, d in kept], count=len(kept) if answer.count is not None else None,
                 none_class=answer.none_class if not kept else None)
    if not kept and ans.none_class is None:
        ans.none_class = ""
    return to_refs(ans, [r for r, _ in kept])


def ref_rejected(pref: PreferencePair, view: RegionView, rng: random.Random) -> str | None:
    """Reference form of a rejected answer: invented or misplaced items point at regions
    that cover no true defect (or any other region); None when no such answer exists."""
    spare = [j for j in range(len(view.regions)) if j not in view.gt_to_region.values()]
    items: list[tuple[int, Detection]] = []
    for gi, d in zip(pref.rejected_index, pref.rejected.detections):
        if gi is None:
            pool = spare or list(range(len(view.regions)))
            if not pool:
                return None
            items.append((rng.choice(pool), d))
        elif gi in view.gt_to_region:
            items.append((view.gt_to_region[gi], d))
    items.sort(key=lambda t: t[0])
    dedup = list({r: (r, d) for r, d in items}.values())
    count = len(dedup) if pref.rejected.count is not None else None
    ans = Answer([d for _, d in dedup], count=count, none_class=None if dedup else (pref.rejected.none_class or ""))
    return to_refs(ans, [r for r, _ in dedup])


def _prompt(view: RegionView, question: str) -> list[dict]:
    text = prompt_text(view.regions, question, view.size)
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


def sft_rows(pairs: list[QAPair], views: dict[tuple[str, str], RegionView]) -> list[dict]:
    """prompt-completion rows for trl's SFTTrainer (completion-only loss)."""
    rows = []
    for qa in pairs:
        view = views.get((qa.sample_id, qa.source))
        if view is None:
            continue
        rows.append({"images": [view.image], "prompt": _prompt(view, qa.question),
                     "completion": _assistant(ref_target(qa.answer, qa.gt_index, view))})
    return rows


def dpo_rows(prefs: list[PreferencePair], views: dict[tuple[str, str], RegionView], seed: int) -> list[dict]:
    """prompt / chosen / rejected rows for trl's DPOTrainer."""
    rng = random.Random(seed)
    rows = []
    for p in prefs:
        view = views.get((p.qa.sample_id, p.qa.source))
        if view is None:
            continue
        chosen = ref_target(p.qa.answer, p.qa.gt_index, view)
        rejected = ref_rejected(p, view, rng)
        if rejected is None or rejected == chosen:
            continue
        rows.append({"images": [view.image], "prompt": _prompt(view, p.qa.question),
                     "chosen": _assistant(chosen), "rejected": _assistant(rejected)})
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
        regions = propose_batch(vlm, np.stack([np.asarray(im) for im in imgs]), frames)
        for (s, src, *_), im, regs, frame in zip(chunk, imgs, regions, frames):
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


def propose_batch(vlm, images, frames):
    from components.model.regions import propose

    return propose(vlm, images, frames)
