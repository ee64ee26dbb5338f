"""The sentence a person reads for each kind of answer."""
from components.qa.grammar import Answer, Detection, Reading, answer_for
from components.qa.sentence import sentence

SHORT = Detection("short", (280, 230, 302, 254), 0.64)


def test_sentences_say_what_was_found_for_the_question():
    assert sentence(answer_for(Reading(("short",)), [SHORT])) == "One short circuit, at (291, 242), confidence 0.64."
    assert sentence(answer_for(Reading(("short",)), [])) == "No short circuit found."
    assert sentence(answer_for(Reading(("short", "spur")), [])) == "No short circuits or spurs found."
    assert sentence(answer_for(Reading((), False, "tl"), [])) == "No defects found in the top left."
    two = answer_for(Reading((), True), [SHORT, Detection("spur", (10, 10, 20, 20), 0.91)])
    assert sentence(two) == "Two defects: short circuit at (291, 242), confidence 0.64; spur at (15, 15), confidence 0.91."
    assert sentence(Answer(out_of_scope=True)).startswith("I can only answer questions about defects on this board")
    assert answer_for(Reading(off=True), []).to_dict()["out_of_scope"] is True
