"""An optional blur-consistency check around an Inspector.

Each board is also looked at as a Gaussian-blurred copy (board and template blurred
alike). A reported defect is kept only if the model sees a defect there on the blurred
copy too (IoU >= cfg.blur_check_iou): a real defect survives a slight blur, a peak made by
sensor noise or a JPEG artefact often does not. "Sees" means the blurred copy's regions
(spatial branch + refiner, above the region floor), not its answer: the language model's
answer follows the question ("any shorts?") and would hide the rest, and the regions alone
cost about a third of a full answer. By default the blurred region may be of another class:
blur erases the fine detail that tells a mousebite from an open or a spur from a short, so
asking for the same class drops real defects (cfg.blur_check_same_class). Evaluation
reports the latency it adds, as measured.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from PIL import Image, ImageFilter
from torchvision.ops import box_iou

from components.model.fuse import open_gray
from components.qa.grammar import Answer, Detection, answer_for, render


def blurred(image: str | Path | Image.Image, sigma: float) -> Image.Image:
    """A Gaussian-blurred grey copy (PIL's radius is the kernel's standard deviation)."""
    return open_gray(image).filter(ImageFilter.GaussianBlur(radius=sigma))


def consistent(original: list[Detection], other: list[Detection], iou_min: float,
               same_class: bool = False) -> list[Detection]:
    """The detections of `original` that have a detection in `other` (of the same class, when
    asked) with IoU >= iou_min."""
    if not original or not other:
        return []
    iou = box_iou(torch.tensor([d.box for d in original], dtype=torch.float32),
                  torch.tensor([d.box for d in other], dtype=torch.float32))
    match = iou >= iou_min
    if same_class:
        match &= torch.tensor([[a.cls == b.cls for b in other] for a in original])
    keep = match.any(dim=1).tolist()
    return [d for d, k in zip(original, keep, strict=True) if k]


def filtered_answer(answer: Answer, kept: list[Detection]) -> Answer:
    """The answer with only `kept` detections; count, 'none found' and scope follow the reading."""
    if answer.asked is None:
        out = Answer(list(kept), count=len(kept) if answer.count is not None else None)
        out.none_class = None if kept else (answer.none_class or "")
        return out
    return answer_for(answer.asked, list(kept))


class BlurChecked:
    """Same interface as Inspector (ask, ask_batch, vlm, version_info), answers blur-checked."""

    def __init__(self, inner, sigma: float, iou: float, same_class: bool):
        self.inner, self.sigma, self.iou, self.same_class = inner, sigma, iou, same_class

    @property
    def vlm(self):
        return self.inner.vlm

    @property
    def version_info(self) -> dict:
        return {**self.inner.version_info, "blur_check_sigma": self.sigma, "blur_check_iou": self.iou,
                "blur_check_same_class": self.same_class}

    def ask(self, image, question: str, template=None):
        return self.ask_batch([(image, template)], question)[0]

    def ask_batch(self, boards: list[tuple], question: str | list[str]) -> list:
        """The inner inspector's answers, each defect kept only if the blurred copy's regions
        confirm it; each result's latency includes the blurred pass (batch time / boards)."""
        start = time.perf_counter()
        answers = self.inner.ask_batch(boards, question)
        return self._checked(answers, self._blurred_regions(boards), start)

    def ask_many(self, image, template, questions: list[str]) -> list:
        """The inner inspector's answers to several questions about one board, blur-checked
        against one blurred pass."""
        start = time.perf_counter()
        answers = self.inner.ask_many(image, template, questions)
        return self._checked(answers, self._blurred_regions([(image, template)]) * len(answers), start)

    def _blurred_regions(self, boards: list[tuple]) -> list:
        return self.inner.regions_batch([(blurred(img, self.sigma), None if tmpl is None else blurred(tmpl, self.sigma))
                                         for img, tmpl in boards])

    def _checked(self, answers: list, seen: list, start: float) -> list:
        """Each answer with only the defects its blurred regions confirm; latency = time since start / answers."""
        from components.model.inference import InspectResult

        each = (time.perf_counter() - start) / len(answers)
        results = []
        for p, regions in zip(answers, seen, strict=True):
            answer = filtered_answer(p.answer, consistent(p.answer.detections, regions, self.iou, self.same_class))
            results.append(InspectResult(answer, render(answer), p.raw, p.regions, each, message=self.inner.says(answer)))
        return results


def load_inspector(model_dir: Path, cfg, quantize: bool | None = None, blur_check: bool | None = None):
    """An Inspector for a model folder, wrapped in the blur-consistency check when asked
    (None: as served, cfg.serve.blur_check)."""
    from components.model.inference import Inspector

    inspector = Inspector.load(model_dir, quantize=quantize)
    if cfg.serve.blur_check if blur_check is None else blur_check:
        inspector = BlurChecked(inspector, cfg.eval.blur_check_sigma, cfg.eval.blur_check_iou,
                                cfg.eval.blur_check_same_class)
    return inspector
