"""The words of the wafer line's questions: the question kinds, how engineers phrase each (the
training phrasings here; evaluation's are apart, components/evaluation/wafer_heldout.yaml), and
the root-cause table the answers quote as hypotheses. The labels' own names are the line's
(lines/wafer.yaml `words`), passed in.

`{s}` / `{p}` in a phrasing are a pattern's singular / plural name, `{i}` what the map is called
(the line's `items`: wafer, wafer map, map).
"""
from __future__ import annotations

from components.qa.vocab import FILLER_PHRASES, FRAMES, LEADS, OUT_OF_SCOPE

NONE = "None"
"""The label of a map with no systematic pattern: presence questions never ask about it."""

KINDS = ("pattern", "presence", "location", "morphology", "count", "share", "cause")
"""What a question about a map asks; the language model's reading names one (or [OFF])."""
OFF_KIND = "off"
"""A question that is not about the map (the reading's [OFF]): answered with what can be asked."""

SLOTS: dict[str, tuple[str, ...]] = {
    "f": ("failing dies", "failures", "fails", "bad dies", "failed dies", "defective dies", "rejects", "failing chips",
          "bad chips", "fail bins"),
    "n": ("pattern", "failure pattern", "defect pattern", "fail pattern", "failure signature", "defect type",
          "pattern type", "failure mode", "defect category"),
    "r": ("part", "area", "region", "zone", "side", "section"),
    "b": ("failing", "bad", "failed", "defective", "rejected"),
}
"""Words engineers use interchangeably inside a phrasing: {f} the failing dies, {n} a pattern,
{r} a part of the wafer, {b} failing; `wafer_generate.ask` fills each with one drawn at random."""

PHRASINGS: dict[str, list[str]] = {
    "pattern": ["What {n} does this {i} show?", "What {n} is on this {i}?", "Which {n} do you see?",
                "Classify the {n} of this {i}.", "What kind of {n} do the {f} form?", "Is there any systematic {n}?",
                "What is the {n}?", "Identify the {n}.", "What {n} is this?", "Which {n} does this {i} have?",
                "Name the {n} of the {i}.", "What {n} would you call this?", "Tell me which {n} it is.",
                "{n}?", "Which class is this {i}?", "What {n} are we looking at?", "Label the {n}.",
                "What would you label this {i} as?", "Which {n} fits this {i} best?", "Categorize this {i}."],
    "presence": ["Is there a {s}?", "Any {p} on this {i}?", "Does this {i} show a {s}?", "Do you see a {s}?",
                 "Is this a {s}?", "Does the {i} have {p}?", "Are there {p}?", "Check for a {s}.",
                 "Can you find a {s}?", "Is a {s} visible?", "Does it look like a {s}?", "Any sign of a {s}?",
                 "Do we have a {s} on this {i}?", "Is it a {s} or not?",
                 "{s}?", "Could it be a {s}?", "Is a {s} present?", "Does this look like {p} to you?",
                 "Is there evidence of a {s}?", "Are we seeing {p} here?", "Tell me if there is a {s}."],
    "location": ["Where are the {f}?", "Where on the {i} are the {f}?", "Which {r} of the {i} has the {f}?",
                 "Where are the {f} located?", "In which {r} are the {f}?", "Where do the {f} sit?",
                 "Where is the {n} located?", "Where are the {f} concentrated?", "Locate the {f}.",
                 "Which {r} is {b}?", "Where is the {n}?", "Which {r} of the {i} is {b}?",
                 "Location of the {f}?", "Where do the {f} show up?", "Where is the {i} failing?",
                 "Show me where the {f} are.", "In what {r} do the {f} appear?", "Where is the {b} {r}?"],
    "morphology": ["What shape do the {f} make?", "What does the {n} look like?", "Describe the shape of the {f}.",
                   "Are the {f} clustered, in a line or scattered?", "What is the morphology of the {f}?",
                   "How do the {f} look?", "How are the {f} laid out?", "What geometry do the {f} have?",
                   "Are the {f} clustered or spread out?", "Is the {n} a cluster, a line or a ring?",
                   "How are the {f} distributed?", "What layout do the {f} have?", "How are the {f} grouped?",
                   "What is the configuration of the {f}?",
                   "What form do the {f} take?", "How are the {f} arranged?", "Shape of the {f}?",
                   "Describe the {n}.", "Is the {n} round, linear or scattered?", "What does the {i} look like?"],
    "count": ["How many {f} are there?", "How many dies failed?", "Count the {f}.", "What is the number of {f}?",
              "How many {f} does this {i} have?", "How many {b} dies are on this {i}?",
              "Give me the number of {f}.", "Number of {f}?", "How many {f} in total?", "Total count of {f}?",
              "What is the fail count?", "How many dies are {b}?", "Count of {f}?", "How many {f} do we have?"],
    "share": ["What share of the {i} failed?", "What percentage of dies failed?", "What percent of the {i} is {b}?",
              "What is the yield loss?", "How much of the {i} failed?", "What fraction of the dies are {b}?",
              "What is the yield of this {i}?", "What proportion of the dies failed?", "How much yield is lost?",
              "What is the fail rate?", "What is the failure rate of this {i}?", "What ratio of the dies is {b}?",
              "Yield?", "What portion of the {i} is {b}?", "Percentage of {f}?", "How much yield did we lose?"],
    "cause": ["What could have caused this?", "What is the likely root cause?", "Why did these dies fail?",
              "What process step could cause this {n}?", "What should I check?", "What might explain this {n}?",
              "What is the root cause of the {f}?", "What caused the {f}?", "Which tool could be responsible?",
              "Where does this {n} come from?", "What is the reason for the {f}?", "What went wrong in the process?",
              "Which process step is to blame?", "Why did it fail?", "What is behind these {f}?",
              "What is causing the {f}?", "Root cause?", "Which tool is at fault?", "What issue could cause this {n}?",
              "Where should I look for the cause?", "What is the probable cause?", "Possible causes?"],
}
"""Per question kind, how engineers phrase it (training only; see the module doc)."""


KEY_WORDS: frozenset[str] = frozenset({
    "pattern", "signature", "type", "mode", "category", "classify", "identify", "name", "call", "kind", "systematic",
    "where", "located", "locate", "which", "region", "zone", "part", "area", "side", "section", "concentrated", "sit",
    "shape", "look", "morphology", "geometry", "clustered", "line", "scattered", "spread", "laid", "ring", "cluster",
    "many", "count", "number", "total", "share", "percentage", "percent", "yield", "fraction", "proportion", "rate",
    "ratio", "much", "distributed", "layout", "grouped", "configuration", "cause", "caused", "causes", "root", "why",
    "reason", "explain", "check", "responsible", "blame",
    "behind", "wrong", "process", "step", "tool", "come", "there", "any", "is", "does", "do", "see", "find", "sign",
    "visible", "have", "not", "class", "label", "categorize", "present", "evidence", "seeing", "appear", "show",
    "form", "arranged", "describe", "round", "linear", "causing", "issue", "fault", "probable", "possible",
    "portion", "location"})
"""Words that say what kind of question it is: training never drops them (`wafer_generate`'s
word dropout), so a question whose other words are new to the model still reads as asked."""
EMBELLISHMENTS: list[str] = FRAMES + LEADS + FILLER_PHRASES
"""What people wrap around any question (the PCB line's, `qa/generate.embellish`; board words said
as the line's items)."""
UNKNOWN_WORD = "xqzjv"
"""What word dropout puts in a dropped word's place: a word no vocabulary holds (read as [UNK])."""

OFF_PHRASINGS: list[str] = [q for q in OUT_OF_SCOPE if "board" not in q.lower()] + [
    "Who made this {i}?", "How much does this {i} cost?", "Write a poem.", "Who won the game?"]

PATTERN_LOCATION: dict[str, str] = {"Center": "centre", "Edge-Ring": "ring", "Near-full": "everywhere"}
"""Where a pattern's name puts the failing dies (qa/wafer_measure LOCATIONS): a location answer of a
map decided to show one of these says so; for the others (a local cluster, a scratch, an edge
spot) code measures where the pattern's dies are."""

ROOT_CAUSES: dict[str, list[str]] = {
    NONE: ["no process cause is indicated: the failures are at the random baseline of the process"],
    "Center": ["non-uniform deposition or etch at the wafer centre", "CMP pressure or slurry distribution at the centre",
               "a lithography focus or exposure issue at the centre"],
    "Donut": ["a ring of non-uniform film thickness from deposition or spin coating",
              "a temperature non-uniformity of the chuck at mid radius"],
    "Edge-Loc": ["wafer handling damage at one spot of the edge", "a clamp or edge ring contacting the wafer",
                 "local contamination at the edge"],
    "Edge-Ring": ["edge bead removal or edge exposure set wrong", "etch or temperature non-uniformity at the rim",
                  "film thickness roll-off at the edge"],
    "Loc": ["local particle contamination", "a local defect in a mask or reticle", "a probe-card or test contact issue"],
    "Near-full": ["a process step that failed for the whole wafer (wrong recipe, skipped step)",
                  "a test program or probe-card set-up error"],
    "Random": ["random particles from the clean room or a tool", "a contaminated chemical or gas line"],
    "Scratch": ["mechanical scratching in wafer handling or transport", "a scratch from CMP (a particle in the pad)"],
}
"""Per label, the causes engineers check first: quoted as hypotheses to check, never as findings
(after the WM-811K literature's usual process attributions)."""
