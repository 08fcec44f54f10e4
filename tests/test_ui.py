"""The UI package's pure parts: what the page says, derived from data (no browser)."""

from studio.engines import Capabilities
from studio.engines.frames import ChunkPlan
from studio.ui.common import engine_note, mode_choices
from studio.ui.library import EMPTY_LIBRARY, library_message
from studio.ui.live import chunk_plan, expected_seconds
from studio.ui.reference import detected_line, unsure_words


def test_engine_notes_follow_any_set_of_cloning_modes():
    one = engine_note("One", Capabilities(languages=("English",), modes=("xvector",)))
    assert "English only" in one and "reference audio alone" in one
    three = engine_note("Three", Capabilities(modes=("icl", "xvector", "instruct")))
    assert "ICL (reference audio and its transcript) or x-vector (reference audio alone) or instruct" in three
    assert mode_choices(("instruct", "icl")) == [("instruct", "instruct"),
                                                 ("ICL (reference audio and its transcript)", "icl")]


def test_transcription_says_chosen_or_detected_and_marks_unsure_words():
    transcript = {"language": "Japanese", "probability": 0.97, "text": "今日は<b>",
                  "words": [{"text": "今日", "probability": 0.9}, {"text": "は<b>", "probability": 0.2}]}
    assert detected_line(transcript, "Japanese").startswith("**Japanese** (chosen)")
    assert "Detected **Japanese** (probability 0.97)" in detected_line(transcript, "Auto")
    marked = unsure_words(transcript)
    assert "<mark title='probability 0.20'>は&lt;b&gt;</mark>" in marked and "<b>" not in marked
    assert unsure_words({"words": [{"text": "ok", "probability": 0.99}]}) == ""


def test_the_empty_library_line_keeps_what_just_happened():
    deleted = "Deleted 'Ann'. It is in the trash: Undo delete brings it back."
    assert library_message(deleted, False) == f"{deleted}\n\n{EMPTY_LIBRARY}"
    assert library_message("", False) == EMPTY_LIBRARY
    assert library_message(EMPTY_LIBRARY, True) == ""


def test_the_player_knows_how_long_a_line_will_be_and_how_it_arrives():
    assert expected_seconds("Hello there, how are you today?", "English") > 1.5
    assert expected_seconds("Hello there, how are you today?", "English", max_seconds=0.8) == 0.8
    assert chunk_plan(0.08, ChunkPlan())[:5] == [0.08, 0.16, 0.32, 0.64, 0.96]
    assert chunk_plan(0.04)[:3] == [0.04, 0.04, 0.04]
