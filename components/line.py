"""A product line, declared in one file: `lines/<name>.yaml`.

A line file says what one product's drops and questions look like: its defect vocabulary
with the words inspectors use for each class, the image sizes a drop may hold, whether a
board comes with a defect-free reference (template), its gate thresholds where they differ
from the config's gate section, and the name its model is registered under. `read_line`
checks the file strictly (an unknown, missing or mistyped field is refused, naming the file
and the field); `components/config.py` puts it into the typed config: the line's own values
become the `line` section (`LineConfig`), its classes `data.classes`, its model name
`registered_model`, its thresholds `gate.*`.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LINES_DIR = REPO / "lines"
DEFAULT_LINE = "pcb"
"""The line every command uses unless given `--line`: today's DeepPCB boards."""
BOXES_KIND, WAFER_KIND = "boxes", "wafer-map"
KINDS = (BOXES_KIND, WAFER_KIND)
"""What a line's drops hold and its questions are about: boxes (defects with boxes on images, the
pcb and steel lines) or wafer-map (bin maps labelled with one failure pattern each: the wafer
line, components/data/wafer.py and the wafer modules beside it)."""
REFERENCE_MODES = ("required", "optional", "none")
"""required: every board comes with its template; optional: a drop may carry templates (a
DeepPCB drop pairs every board with one, a VOC/COCO drop has none); none: the line has no
reference images."""
APPLIED = ("registered_model", "gate")
"""Fields of a line file that set keys outside the `line` section (see LineFile)."""
OPTIONAL = ("gate", "heldout_words", "kind")
"""Fields a line file may leave out (no gate field: the config's gate section as it is; no
heldout_words: evaluation names each class by its first training words; no kind: boxes)."""
THRESHOLD = ("min_", "max_")
LINE_GATE_KEYS = ("primary_metric",)
"""A line's gate field sets thresholds (gate.min_* / gate.max_*) and the figure a candidate must
improve or hold (a wafer line's is not a box figure); how a candidate is compared with its
champion (margins, bootstrap) is the platform's, the same for every line."""


def line_gate_key(name: str) -> bool:
    """Whether a line file may set gate.<name>."""
    return name.startswith(THRESHOLD) or name in LINE_GATE_KEYS
FILE_ONLY = ("line.name", "line.kind", "line.words", "line.heldout_words", "line.items", "paths.line")
"""Keys only a line file sets (a name is its file's, words and items need their structure),
never params.yaml or --set."""

Words = dict[str, tuple[tuple[str, str], ...]]
"""Per class, in class order, the (singular, plural) names inspectors use for it."""


class LineError(ValueError):
    """A line file that cannot be used; the message names the file and the field."""


def help_meta(text: str) -> dict[str, str]:
    """A field's metadata: its one- or two-sentence help (`config.describe`, `defectqa config show`)."""
    return {"help": text}


def default_words() -> Words:
    """The default line's words (lines/pcb.yaml): the one place they are written."""
    return dict(_read_default().line.words)


def default_heldout_words() -> Words:
    """The default line's held-out class names (lines/pcb.yaml `heldout_words`)."""
    return dict(_read_default().line.heldout_words)


def default_items() -> tuple[str, ...]:
    """What the default line's inspectors call the thing inspected (lines/pcb.yaml `items`)."""
    return _read_default().line.items


@dataclass
class LineConfig:
    """The line's own values, the config's `line` section. Scalars default to the pcb line's
    (lines/pcb.yaml states them again; a test keeps the two equal), its words are read from it."""
    name: str = field(default=DEFAULT_LINE, metadata=help_meta(
        "The product line (`--line`): its file is lines/<name>.yaml, which sets this section, data.classes, "
        "registered_model and the gate thresholds it lists."))
    kind: str = field(default="boxes", metadata=help_meta(
        "What the line's drops hold: boxes (images with defect boxes; every PCB-style command) or wafer-map (bin "
        "maps with one pattern label each; `defectqa evaluate --line wafer`, the wafer modules)."))
    reference: str = field(default="optional", metadata=help_meta(
        "Whether a board comes with a defect-free template: required (validation quarantines a board without "
        "one), optional (DeepPCB drops pair each board with one, VOC/COCO drops have none) or none."))
    min_width: int = field(default=640, metadata=help_meta(
        "Smallest accepted image width, in pixels: validation quarantines narrower images (the model input size "
        "is model.input_size, whatever the image's)."))
    max_width: int = field(default=640, metadata=help_meta(
        "Largest accepted image width, in pixels: validation quarantines wider images."))
    min_height: int = field(default=640, metadata=help_meta(
        "Smallest accepted image height, in pixels: validation quarantines shorter images."))
    max_height: int = field(default=640, metadata=help_meta(
        "Largest accepted image height, in pixels: validation quarantines taller images."))
    words: Words = field(default_factory=default_words, metadata=help_meta(
        "Per class, the [singular, plural] names inspectors use (the line file's `words`, whose order is "
        "data.classes'): QA questions, the tokenizer's vocabulary and question normalisation use them."))
    heldout_words: Words = field(default_factory=default_heldout_words, metadata=help_meta(
        "Per class, [singular, plural] names only evaluation asks in (components/evaluation/questions.py), "
        "inspectors' other words and typos; a class without any is asked by its first `words` name."))
    items: tuple[str, ...] = field(default_factory=default_items, metadata=help_meta(
        "What inspectors call the thing inspected (pcb: board, pcb, panel): the questions the QA generator and "
        "the held-out file write with board / pcb / panel use these instead, in this order."))


@dataclass(frozen=True)
class LineFile:
    """A line file as read: its `line` section and what it sets elsewhere in the config."""
    path: Path
    line: LineConfig
    registered_model: str
    """The MLflow registered model name (`defect-vlm-<name>`; pcb keeps `defect-vlm`)."""
    gate: dict[str, Any]
    """Gate thresholds that differ from the config's gate section (`gate.<key>` -> value)."""

    @property
    def where(self) -> str:
        """How messages name the file."""
        return _shown(self.path)

    @property
    def classes(self) -> tuple[str, ...]:
        """data.classes: the vocabulary, in the order the file lists it (DeepPCB type k is the k-th)."""
        return tuple(self.line.words)


def line_path(line: str | Path) -> Path:
    """The file of a line: a name (`steel` -> lines/steel.yaml) or a path to a .yaml file."""
    text = str(line)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        return Path(text)
    return LINES_DIR / f"{text}.yaml"


def known_lines() -> list[str]:
    return sorted(p.stem for p in LINES_DIR.glob("*.yaml"))


def read_line(line: str | Path) -> LineFile:
    """Read and check a line file; LineError names the file and the field on anything wrong."""
    path = line_path(line)
    where = _shown(path)
    if not path.is_file():
        raise LineError(f"no line {str(line)!r}: {where} does not exist (lines: {', '.join(known_lines())})")
    raw = _mapping(path, where)
    structured = ("words", "heldout_words", "items")
    own = {f.name: _scalar(raw, f.name, f.default, where) for f in dataclasses.fields(LineConfig)
           if f.name not in structured and (f.name in raw or f.name not in OPTIONAL)}
    words = _words(raw["words"], where)
    parsed = LineConfig(**own, words=words, heldout_words=_heldout(raw.get("heldout_words") or {}, words, where),
                        items=_items(raw["items"], where))
    check(parsed, where)
    if parsed.name != path.stem:
        raise LineError(f"{where}: field 'name': {parsed.name!r} is not the file's name {path.stem!r} "
                        "(a line's file is lines/<name>.yaml)")
    gate = raw.get("gate") or {}
    if not isinstance(gate, dict):
        raise LineError(f"{where}: field 'gate': expected a mapping of gate thresholds to values, got {gate!r}")
    for key in gate:
        if not line_gate_key(str(key)):
            raise LineError(f"{where}: field 'gate.{key}': not a threshold (a line sets gate.min_* / gate.max_* and "
                            f"{', '.join(LINE_GATE_KEYS)} only)")
    return LineFile(path, parsed, _scalar(raw, "registered_model", "", where), dict(gate))


def file_key(key: str) -> str | None:
    """The line-file field a config key comes from (`data.classes` -> `words`), None for a key
    no line file sets. params.yaml holds none of these; dvc.yaml reads them from the line file."""
    section, _, name = key.partition(".")
    if section == "line":
        return name
    if key == "data.classes":
        return "words"  # the classes are the words' keys, in order
    if key == "registered_model" or (section == "gate" and line_gate_key(name)):
        return key
    return None


def check(line: LineConfig, where: str) -> None:
    """What the line's values must satisfy wherever they come from (its file, params.yaml, --set)."""
    if line.kind not in KINDS:
        raise LineError(f"{where}: field 'kind': {line.kind!r} is not one of {', '.join(KINDS)}")
    if line.reference not in REFERENCE_MODES:
        raise LineError(f"{where}: field 'reference': {line.reference!r} is not one of {', '.join(REFERENCE_MODES)}")
    for axis in ("width", "height"):
        lo, hi = getattr(line, f"min_{axis}"), getattr(line, f"max_{axis}")
        if lo < 1:
            raise LineError(f"{where}: field 'min_{axis}': {lo} px; an image is at least 1 px")
        if lo > hi:
            raise LineError(f"{where}: field 'min_{axis}': {lo} px is above max_{axis} {hi} px")


@functools.cache
def _read_default() -> LineFile:
    """Read once per process: Config() takes the default line's words from it."""
    return read_line(DEFAULT_LINE)


def _shown(path: Path) -> str:
    """How messages name a line file: repo-relative when it is one of the repo's."""
    resolved = path.resolve()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else str(path)


def _mapping(path: Path, where: str) -> dict:
    """The file's top-level mapping, its field names checked: none unknown, none missing."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise LineError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise LineError(f"{where}: expected a mapping of fields, got {type(raw).__name__}")
    fields = [f.name for f in dataclasses.fields(LineConfig)] + list(APPLIED)
    unknown = [k for k in raw if k not in fields]
    if unknown:
        raise LineError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(fields)})")
    missing = [k for k in fields if k not in raw and k not in OPTIONAL]
    if missing:
        raise LineError(f"{where}: missing field {missing[0]!r}")
    return raw


def _scalar(raw: dict, key: str, example: Any, where: str) -> Any:
    """raw[key], of the type of `example` (a non-empty str, or an int that is no bool)."""
    value = raw[key]
    kind = type(example)
    if not isinstance(value, kind) or isinstance(value, bool) or (kind is str and not value.strip()):
        wanted = "a non-empty text" if kind is str else "a whole number"
        raise LineError(f"{where}: field {key!r}: expected {wanted}, got {value!r}")
    return value


def _words(raw: Any, where: str, name: str = "words") -> Words:
    """The `words` field (or another of its shape): class -> non-empty list of [singular, plural]
    pairs, at least one class."""
    if not isinstance(raw, dict) or not raw:
        raise LineError(f"{where}: field {name!r}: the vocabulary is empty or not a mapping: list each class "
                        f"with the [singular, plural] words inspectors use for it, got {raw!r}")
    out: Words = {}
    for cls, pairs in raw.items():
        key = f"{name}.{cls}"
        if not isinstance(cls, str) or not cls.strip():
            raise LineError(f"{where}: field {key!r}: a class name must be a non-empty text")
        if not isinstance(pairs, list) or not pairs:
            raise LineError(f"{where}: field {key!r}: no words: give at least one [singular, plural] pair, got {pairs!r}")
        out[cls] = tuple(_pair(p, f"{key}[{i}]", where) for i, p in enumerate(pairs))
    return out


def _heldout(raw: Any, words: Words, where: str) -> Words:
    """The `heldout_words` field: like `words`, for classes of `words` only."""
    if not isinstance(raw, dict):
        raise LineError(f"{where}: field 'heldout_words': expected a mapping of classes to [singular, plural] pairs, "
                        f"got {raw!r}")
    if unknown := [c for c in raw if c not in words]:
        raise LineError(f"{where}: field 'heldout_words.{unknown[0]}': not a class of this line "
                        f"(classes: {', '.join(words)})")
    return _words(raw, where, "heldout_words") if raw else {}


def _items(raw: Any, where: str) -> tuple[str, ...]:
    """The `items` field: a non-empty list of non-empty texts."""
    if not (isinstance(raw, list) and raw and all(isinstance(w, str) and w.strip() for w in raw)):
        raise LineError(f"{where}: field 'items': expected a list of what inspectors call the thing inspected "
                        f"(e.g. [board, pcb, panel]), got {raw!r}")
    return tuple(raw)


def _pair(pair: Any, key: str, where: str) -> tuple[str, str]:
    if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(w, str) and w.strip() for w in pair)):
        raise LineError(f"{where}: field {key!r}: expected [singular, plural] (two non-empty texts), got {pair!r}")
    return pair[0], pair[1]
