"""The words of the wafer line's questions: the question kinds, how engineers phrase each (the
training phrasings here; evaluation's are apart, components/evaluation/wafer_heldout.yaml), and
the root-cause table the answers quote as hypotheses. The labels' own names are the line's
(lines/wafer.yaml `words`), passed in.

`{s}` / `{p}` in a phrasing are a pattern's singular / plural name, `{i}` what the map is called
(the line's `items`: wafer, wafer map, map).
"""
from __future__ import annotations

from components.qa.vocab import OUT_OF_SCOPE

NONE = "None"
"""The label of a map with no systematic pattern: presence questions never ask about it."""

KINDS = ("pattern", "presence", "location", "morphology", "count", "share", "cause")
"""What a question about a map asks; the language model's reading names one (or [OFF])."""
OFF_KIND = "off"
"""A question that is not about the map (the reading's [OFF]): answered with what can be asked."""

PHRASINGS: dict[str, list[str]] = {
    "pattern": ["What defect pattern does this {i} show?", "What pattern is on this {i}?",
                "Which failure pattern do you see?", "Classify the failure pattern of this {i}.",
                "What kind of pattern do the failing dies form?", "Is there any systematic pattern on this {i}?",
                "What is the failure signature?", "Identify the defect pattern.", "What pattern is this?",
                "Which defect type does this {i} have?"],
    "presence": ["Is there a {s}?", "Any {p} on this {i}?", "Does this {i} show a {s}?", "Do you see a {s}?",
                 "Is this a {s}?", "Does the {i} have {p}?", "Are there {p}?", "Check for a {s}."],
    "location": ["Where are the failing dies?", "Where on the {i} are the failures?", "Which part of the {i} failed?",
                 "Where is the pattern located?", "Where do the bad dies sit?", "In which zone are the failing dies?",
                 "Where is the failure concentrated?", "Which area of the {i} has the failures?"],
    "morphology": ["What shape do the failing dies make?", "What does the failure cluster look like?",
                   "Describe the shape of the pattern.", "Are the failures clustered, in a line or scattered?",
                   "What is the morphology of the failing dies?", "How do the failures look?"],
    "count": ["How many dies failed?", "How many failing dies are there?", "Count the failing dies.",
              "What is the number of bad dies?", "How many dies are bad on this {i}?", "How many failures are there?"],
    "share": ["What share of the {i} failed?", "What percentage of dies failed?", "What is the yield loss?",
              "How much of the {i} failed?", "What fraction of the dies are failing?", "What is the yield of this {i}?"],
    "cause": ["What could have caused this?", "What is the likely root cause?", "Why did these dies fail?",
              "What process step could cause this pattern?", "What should I check?",
              "What might explain this pattern?", "What is the root cause of the failures?"],
}
OFF_PHRASINGS: list[str] = [q for q in OUT_OF_SCOPE if "board" not in q.lower()] + [
    "Who made this {i}?", "How much does this {i} cost?", "Write a poem.", "Who won the game?"]

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
