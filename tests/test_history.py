"""Take history (studio/history.py) and stream tickets (studio/tickets.py), without the UI."""

import json

import numpy as np
import pytest

from studio.history import History, TakeNotFound
from studio.studio import NewVoice, SpeakRequest
from studio.engines import Sampling
from studio.tickets import Tickets

RATE = 24000


def details(**changes):
    base = dict(source="test", text="Hello.", language="English", voice="Ann", voice_name="Ann", engine="qwen",
                mode="icl", seed=1, sampling={"temperature": 0.9}, duration=1.0, time_to_first_audio=0.05,
                total_time=0.5)
    return {**base, **changes}


def tone(seconds=1.0):
    return np.sin(np.arange(int(RATE * seconds)) / 10).astype(np.float32) * 0.1


def test_newest_first_and_kept_across_a_restart(tmp_path):
    history = History(tmp_path)
    first = history.add(tone(), RATE, **details(seed=1))
    second = history.add(tone(), RATE, **details(seed=2))
    again = History(tmp_path)  # a restarted studio reads the same folder
    assert [r.id for r in again.recent()] == [second.id, first.id]
    assert again.get(first.id).seed == 1
    assert again.audio_path(again.get(second.id)).stat().st_size == second.bytes


def test_bounded_in_count_and_bytes(tmp_path):
    history = History(tmp_path, max_takes=3)
    made = [history.add(tone(0.1), RATE, **details(seed=n)) for n in range(5)]
    assert [r.seed for r in history.recent()] == [4, 3, 2]
    assert not (tmp_path / made[0].file).exists()  # the oldest audio went with its entry
    assert len(list(tmp_path.glob("*.wav"))) == 3

    by_bytes = History(tmp_path / "bytes", max_bytes=3 * made[0].bytes)
    for n in range(6):
        by_bytes.add(tone(0.1), RATE, **details(seed=n))
    assert [r.seed for r in by_bytes.recent()] == [5, 4, 3]


def test_a_damaged_index_starts_afresh_and_unknown_ids_are_refused(tmp_path):
    (tmp_path / "history.json").write_text("{not json", encoding="utf-8")
    history = History(tmp_path)
    assert history.recent() == []
    record = history.add(tone(0.1), RATE, **details())
    (tmp_path / "history.json").write_text(json.dumps({"takes": [{"id": "../../etc/passwd"}, 7]}))
    assert History(tmp_path).recent() == []
    with pytest.raises(TakeNotFound):
        history.get("../../etc/passwd")
    with pytest.raises(TakeNotFound):
        history.get(record.id)


def test_real_time_factor_of_the_last_take_of_an_engine(tmp_path):
    history = History(tmp_path)
    assert history.real_time_factor("qwen") is None
    history.add(tone(0.1), RATE, **details(duration=2.0, total_time=1.0))
    history.add(tone(0.1), RATE, **details(engine="marvis", duration=1.0, total_time=3.0))
    assert history.real_time_factor("qwen") == pytest.approx(0.5)
    assert history.real_time_factor("marvis") == pytest.approx(3.0)


def test_the_studio_keeps_streams_one_shots_and_takes(studio, ja_clips):
    entry = ja_clips[0]
    sampling = Sampling(seed=3, max_seconds=4 / 12.5)
    request = SpeakRequest("Kept in the history.", "English", reference=entry["path"], ref_text=entry["text"],
                           sampling=sampling)
    stream = studio.stream(request)
    chunks = [chunk for chunk in stream]
    assert chunks and stream.record is not None
    kept = studio.history.get(stream.record.id)
    assert (kept.source, kept.voice, kept.voice_name, kept.seed) == ("stream", "the reference clip", "", 3)
    assert kept.text == "Kept in the history." and kept.sampling["max_seconds"] == 4 / 12.5
    studio.synthesize_takes(request, 2)
    newest = studio.history.recent(3)
    assert [r.source for r in newest] == ["takes", "takes", "stream"]
    assert sorted(r.seed for r in newest[:2]) == [3, 4]


def test_a_stream_stopped_early_keeps_nothing(studio, ja_clips):
    entry = ja_clips[0]
    before = len(studio.history.recent())
    stream = studio.stream(SpeakRequest("Stopped.", "English", reference=entry["path"], ref_text=entry["text"],
                                        sampling=Sampling(seed=1, max_seconds=20 / 12.5)))
    iterator = iter(stream)
    next(iterator)
    iterator.close()
    assert len(studio.history.recent()) == before and stream.record is None


def test_the_summary_names_the_default_voice_it_fell_back_to(studio, ja_clips):
    saved = studio.save_voice(NewVoice("Fallback", ja_clips[1]["path"], ja_clips[1]["text"]))
    studio.set_default_voice(saved.name)
    speaker = studio.speaker(SpeakRequest("Hi."))
    assert "Fallback" in speaker and "default voice" in speaker
    assert studio.speaker(SpeakRequest("Hi.", voice="Fallback")) == "Fallback"


def test_tickets_admit_once_and_expire():
    tickets = Tickets(ttl=60)
    ticket = tickets.issue("request")
    assert tickets.take(ticket) == "request"
    assert tickets.take(ticket) is None  # single use
    assert tickets.take("made-up") is None and tickets.take(None) is None
    expired = Tickets(ttl=-1)
    assert expired.take(expired.issue("request")) is None
    few = Tickets(limit=2)
    oldest = few.issue("a")
    few.issue("b"), few.issue("c")
    assert few.take(oldest) is None  # beyond the limit, the oldest goes
