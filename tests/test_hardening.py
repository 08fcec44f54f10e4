"""No input may exhaust the server, no imported file is trusted, every generation can be stopped."""

import io
import json
import random
import threading
import time
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch
from gradio_client import handle_file

from studio import badinputs
from studio.archive import import_zip
from studio.engines.frames import FairLock
from studio.errors import InvalidInput
from studio.studio import NewVoice
from studio.transcribe import Transcript, Word, suggest_span
from tests.conftest import counting_frames

MEMORY_BUDGET_MB = 200


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return badinputs.build(tmp_path_factory.mktemp("bad-inputs"), minutes=2.0)


@pytest.mark.parametrize("name", list(badinputs.ACTIONS))
def test_bad_inputs_are_refused_within_the_memory_budget(corpus, tmp_path, name):
    """Each input runs in a fresh process; its peak memory growth is what refusing it cost."""
    result = badinputs.measure(badinputs.ACTIONS[name], corpus[name], tmp_path / "voices")
    assert result["outcome"] != "accepted"
    assert "Something went wrong" not in result["outcome"]
    assert result["growth_mb"] < MEMORY_BUDGET_MB, result


def pt_file(path, items):
    torch.save({"items": items}, path)
    return path


@pytest.mark.parametrize("case", ["nan", "inf", "short", "codes-out-of-range", "codes-float"])
def test_official_pt_files_are_checked_against_the_model(studio, engine, ja_clip, tmp_path, case):
    from dataclasses import asdict

    clip, text = ja_clip
    item = asdict(engine.model.create_voice_clone_prompt(ref_audio=(clip.samples, clip.rate), ref_text=text)[0])
    if case == "nan":
        item["ref_spk_embedding"][0] = float("nan")
    elif case == "inf":
        item["ref_spk_embedding"][-1] = float("inf")
    elif case == "short":
        item["ref_spk_embedding"] = item["ref_spk_embedding"][:10]
    elif case == "codes-out-of-range":
        item["ref_code"][0, 0] = 99999
    elif case == "codes-float":
        item["ref_code"] = item["ref_code"].float()
    with pytest.raises(InvalidInput):
        studio.import_voice(pt_file(tmp_path / "v.pt", [item]), f"PT {case}")
    assert studio.library.find(f"PT {case}") is None


def voice_zip(path, reference: bytes, manifest: dict | None = None):
    manifest = manifest or {"schema_version": 1, "name": "Imported", "mode": "xvector", "ref_text": "",
                            "language": "Japanese"}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("voice.json", json.dumps(manifest))
        archive.writestr("reference.wav", reference)
    return path


def test_imported_reference_over_the_limit_is_refused(studio, ja_clips, tmp_path):
    x, rate = sf.read(ja_clips[0]["path"], dtype="float32")
    long = np.tile(x, int(180 / (len(x) / rate)) + 1)
    buffer = io.BytesIO()
    sf.write(buffer, long, rate, format="FLAC")
    with pytest.raises(InvalidInput, match="the limit is 60 s"):
        import_zip(studio.library, voice_zip(tmp_path / "long.zip", buffer.getvalue()))


def test_imported_reference_is_stored_as_24khz_mono(studio, ja_clips, tmp_path):
    import soxr

    x, rate = sf.read(ja_clips[1]["path"], dtype="float32")
    stereo = np.stack([soxr.resample(x, rate, 48000)] * 2, axis=1)
    buffer = io.BytesIO()
    sf.write(buffer, stereo, 48000, format="WAV")
    voice = import_zip(studio.library, voice_zip(tmp_path / "hi.zip", buffer.getvalue()))
    info = sf.info(studio.library.path(voice) / "reference.wav")
    assert (info.samplerate, info.channels) == (24000, 1)


def test_reference_transcript_limit_is_checked_on_the_way_in(studio, ja_clips):
    limit = studio.settings.max_ref_text_chars
    with pytest.raises(InvalidInput, match=f"limit is {limit}"):
        studio.save_voice(NewVoice("Too Wordy", ja_clips[0]["path"], "あ" * (limit + 1)))
    voice = studio.save_voice(NewVoice("Just Right", ja_clips[0]["path"], "あ" * limit))
    assert studio.library.get("Just Right").ref_text == voice.ref_text  # saved and readable again


def test_voice_audio_is_served_from_the_studio_files_wherever_the_library_lives(studio, ja_clips):
    studio.save_voice(NewVoice("Anywhere", ja_clips[2]["path"], ja_clips[2]["text"]))
    details = studio.voice_details("Anywhere")
    assert details.reference.parent == studio.files.root
    assert details.reference.read_bytes() == (studio.library.path(studio.library.get("Anywhere"))
                                              / "reference.wav").read_bytes()


def test_fair_lock_serves_waiters_in_arrival_order():
    lock, order = FairLock(), []
    lock.acquire()
    threads = []
    for i in range(6):
        thread = threading.Thread(target=lambda i=i: (lock.acquire(), order.append(i), lock.release()))
        thread.start()
        threads.append(thread)
        while len(lock._waiters) < i + 1:  # wait until it queues, so arrival order is known
            time.sleep(0.001)
    lock.release()
    for thread in threads:
        thread.join()
    assert order == list(range(6))


def brute_force_span(transcript, duration, shortest=3.0, longest=15.0):
    """The original quadratic search, kept as the reference for the linear one."""
    from studio.transcribe import _sentence_ends

    words = transcript.words

    def bounds(i, j):
        before = words[i - 1].end if i > 0 else 0.0
        after = words[j + 1].start if j + 1 < len(words) else duration
        return (max(before + (words[i].start - before) / 2, words[i].start - 0.15, 0.0),
                min(after - (after - words[j].end) / 2, words[j].end + 0.2, duration))

    ends = _sentence_ends(words)
    best, best_score = None, -1.0
    for i in range(len(words)):
        starts = i == 0 or ends[i - 1]
        for j in range(i, len(words)):
            start, end = bounds(i, j)
            if end - start > longest:
                break
            if end - start < shortest:
                continue
            score = 2.0 * starts + 2.0 * ends[j] + min(end - start, 10.0) / 10.0
            if score > best_score:
                best, best_score = (start, end), score
    return best


@pytest.mark.parametrize("seed", range(20))
def test_linear_span_search_matches_the_exhaustive_one(seed):
    rng = random.Random(seed)
    words, t = [], 0.0
    for _ in range(rng.randrange(5, 120)):
        t += rng.choice([0.02, 0.05, 0.1, 0.5])
        length = rng.uniform(0.1, 0.6)
        words.append(Word(t, t + length, rng.choice(["a", "b", "c."])))
        t += length
    transcript = Transcript("", "English", "en", 1.0, words)
    span = suggest_span(transcript, t + 0.5)
    expected = brute_force_span(transcript, t + 0.5)
    if expected is not None:
        assert (span.start, span.end) == pytest.approx(expected)


def test_client_transcripts_are_bounded():
    words = [{"start": i * 0.001, "end": i * 0.001, "text": "x"} for i in range(5001)]
    with pytest.raises(InvalidInput, match="at most 5000 words"):
        Transcript.from_dict({"text": "x", "words": words})
    with pytest.raises(InvalidInput, match="ordered"):
        Transcript.from_dict({"words": [{"start": 2, "end": 3, "text": "a"}, {"start": 1, "end": 2, "text": "b"}]})
    with pytest.raises(InvalidInput, match="finite"):
        Transcript.from_dict({"words": [{"start": float("nan"), "end": 3, "text": "a"}]})
    dense = Transcript.from_dict({"words": words[:5000]})  # every pair within 15 s: 12.5 million for a square search
    assert 3 <= suggest_span(dense, 10.0).duration <= 15


def test_cancelled_one_shot_synthesis_stops_generating(client, ja_clips, engine):
    with counting_frames(engine) as frames:
        job = client.submit(text="A one-shot request to cancel.", language="English",
                            reference=handle_file(str(ja_clips[0]["path"])), ref_text=ja_clips[0]["text"],
                            seed=1, max_frames=3000, api_name="/synthesize")
        deadline = time.monotonic() + 60
        while len(frames) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        job.cancel()
        deadline = time.monotonic() + 30
        settled = -1
        while time.monotonic() < deadline and settled != len(frames):
            settled = len(frames)
            time.sleep(0.5)  # no new frame for half a second: generation has stopped
    assert 5 <= len(frames) < 3000
    assert engine.generation_lock.acquire()  # and the engine is free again
    engine.generation_lock.release()


def test_eight_concurrent_script_streams_all_complete(client, ja_clips):
    """8 gradio_client streams at once: every one gets all of its audio."""
    reference = handle_file(str(ja_clips[1]["path"]))
    jobs = [client.submit(text=f"Stream number {i}.", language="English", reference=reference,
                          ref_text=ja_clips[1]["text"], seed=i, max_frames=8, api_name="/stream") for i in range(8)]
    for job in jobs:
        paths = [item for item in job if isinstance(item, str)]
        assert sum(len(sf.read(p)[0]) for p in paths) == 8 * 1920


def test_queue_has_a_size_limit(studio, ja_clips):
    """Past --queue-size waiting requests, more are refused with a message instead of piling up."""
    from gradio_client import Client

    from app import launch
    from studio.studio import Studio
    from tests.conftest import free_port

    port = free_port()
    small = Studio(studio.settings.replace(port=port, queue_size=1, concurrency=1), studio.engine, studio.library,
                   studio.transcriber)
    demo = launch(small, block=False, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        reference = handle_file(str(ja_clips[0]["path"]))
        jobs = [client.submit(text="Busy.", language="English", reference=reference, ref_text=ja_clips[0]["text"],
                              seed=1, max_frames=200, api_name="/stream") for _ in range(4)]
        refused = 0
        for job in jobs:
            try:
                job.result(timeout=300)
            except TimeoutError:
                raise
            except Exception as error:  # noqa: BLE001 - the client reports the refusal as an exception
                refused += "queue" in str(error).lower() or "full" in str(error).lower()
        assert refused >= 1
    finally:
        demo.close()
