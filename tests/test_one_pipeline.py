"""One speech pipeline behind every door, budgets in seconds, and doors that agree.

The live server here runs the tiny checkpoint in bfloat16, the dtype `--dtype auto` picks on
a CPU with native bfloat16 (and the one where a second decode path once crept in).
"""

import base64
import json
from dataclasses import asdict

import numpy as np
import pytest
import soundfile as sf
import torch

from studio.engines import Sampling, create_engine, registry
from studio.engines.base import LONGEST_SENTENCE_SECONDS as CAP
from studio.errors import InvalidInput, VoiceNotFound
from studio.studio import Column, CompareRequest, NewVoice, SpeakRequest, Studio

TEXT = "The first sentence is short. And the second one follows it!"
SEED = 7
MAX = 0.64  # seconds per sentence: 8 frames of Qwen, 16 tokens of Chatterbox-Turbo
LSB = 2 / 32767  # 16-bit audio: one step of rounding, and 32767 vs 32768 as full scale


@pytest.fixture(scope="module")
def bf16(settings, transcriber, ja_clips, tmp_path_factory):
    """A studio on the tiny checkpoint in bfloat16, with a default voice."""
    chosen = settings.replace(dtype="bfloat16", voices_dir=tmp_path_factory.mktemp("bf16-voices"))
    studio = Studio(chosen, create_engine(chosen), transcriber=transcriber)
    entry = ja_clips[0]
    studio.save_voice(NewVoice("Doors", entry["path"], entry["text"], "Japanese", "icl"))
    studio.set_default_voice("Doors")
    return studio


@pytest.fixture(scope="module")
def bf16_server(bf16):
    from app import launch
    from tests.conftest import free_port

    port = free_port()
    demo = launch(Studio(bf16.settings.replace(port=port), bf16.engine, bf16.library, bf16.transcriber),
                  block=False, quiet=True)
    yield port
    demo.close()


def core_take(studio):
    return studio.synthesize(SpeakRequest(TEXT, "English", voice="Doors", sampling=Sampling(seed=SEED, max_seconds=MAX)))


def test_one_shot_is_the_stream_collected_for_several_sentences_in_bfloat16(bf16):
    assert bf16.engine.runtime.dtype == "bfloat16"
    take = core_take(bf16)
    stream = bf16.stream(SpeakRequest(TEXT, "English", voice="Doors", sampling=Sampling(seed=SEED, max_seconds=MAX)))
    streamed = np.concatenate([chunk.samples for chunk in stream])
    assert take.sentences == 2 and len(take.samples) == 2 * 8 * 1920
    np.testing.assert_array_equal(streamed, take.samples)
    assert stream.take.seed == take.seed == SEED


def test_every_door_gives_the_same_audio(bf16, bf16_server):
    from gradio_client import Client
    from websockets.sync.client import connect

    expected = core_take(bf16).samples
    base = f"http://127.0.0.1:{bf16_server}"
    client = Client(base + "/", verbose=False)
    args = dict(text=TEXT, language="English", voice="Doors", seed=SEED, max_frames=8)
    wav, _ = client.predict(**args, api_name="/synthesize")
    one_shot, rate = sf.read(wav, dtype="float32")
    streamed = np.concatenate([sf.read(path, dtype="float32")[0] for path in client.submit(**args, api_name="/stream")
                               if isinstance(path, str)])  # the others are heartbeats
    assert rate == 24000
    for door in (one_shot, streamed):
        assert len(door) == len(expected) and np.abs(door - expected).max() <= LSB

    with connect(f"ws://127.0.0.1:{bf16_server}/api/v1/speak") as socket:
        socket.send(json.dumps({"type": "start", "voice": "Doors", "seed": SEED, "max_frames": 8, "encoding": "f32",
                                "language": "English"}))
        assert json.loads(socket.recv())["type"] == "ready"
        socket.send(json.dumps({"type": "speak", "text": TEXT}))
        pieces = []
        while (message := json.loads(socket.recv()))["type"] != "complete":
            assert message["type"] == "audio_chunk", message
            pieces.append(np.frombuffer(base64.b64decode(message["data"]), dtype="<f4"))
    np.testing.assert_array_equal(np.concatenate(pieces), expected)

    import httpx

    reply = httpx.post(base + "/v1/audio/speech", json={"input": TEXT, "voice": "Doors", "seed": SEED,
                                                        "max_frames": 8, "response_format": "pcm",
                                                        "language": "English"}, timeout=120)
    assert reply.status_code == 200, reply.text
    pcm = np.frombuffer(reply.content, dtype="<i2").astype(np.float32) / 32767
    assert len(pcm) == len(expected) and np.abs(pcm - expected).max() <= LSB


def test_gradio_stream_generates_in_one_thread(bf16, bf16_server):
    """gradio_client's /stream costs what the pipeline costs: generation never hops between pool threads."""
    import threading

    from gradio_client import Client

    threads = set()
    talker = bf16.engine.talker
    original = talker.predict

    def predict(*args, **kwargs):
        threads.add(threading.get_ident())
        return original(*args, **kwargs)

    talker.predict = predict
    try:
        client = Client(f"http://127.0.0.1:{bf16_server}/", verbose=False)
        list(client.submit(text=TEXT, language="English", voice="Doors", seed=1, max_frames=12, api_name="/stream"))
    finally:
        del talker.predict
    assert len(threads) == 1


# -- budgets in seconds ----------------------------------------------------------------------------

def test_request_budget_is_seconds_of_audio_for_every_engine_and_one_shot_too(settings, transcriber, ja_clips,
                                                                              tmp_path):
    studio = Studio(settings.replace(max_request_seconds=1.0, voices_dir=tmp_path), transcriber=transcriber)
    text = "One two three. Four five six seven. Eight nine ten eleven. Twelve thirteen fourteen."
    for engine, closing in (("qwen", 0.0), ("chatterbox-turbo", 0.12)):
        take = studio.synthesize(SpeakRequest(text, "English", reference=ja_clips[0]["path"],
                                              ref_text=ja_clips[0]["text"], engine=engine,
                                              sampling=Sampling(temperature=0, max_seconds=0.6)))
        assert 1.0 - 0.08 <= take.duration <= 1.0 + closing + 0.12, (engine, take.duration)
        assert any("budget" in flag for flag in take.flags), engine


def test_the_hard_cap_per_sentence_is_the_same_length_of_audio_for_every_engine(settings):
    qwen, turbo = create_engine(settings, "qwen"), create_engine(settings, "chatterbox-turbo")
    assert CAP == pytest.approx(327.68)
    assert qwen.steps_for(CAP) * qwen.capabilities.step_seconds == pytest.approx(CAP)
    assert turbo.steps_for(CAP) * turbo.capabilities.step_seconds == pytest.approx(CAP)
    assert turbo.steps_for(CAP) == 2 * qwen.steps_for(CAP) == 8192


# -- foreign voice files and a fourth engine -------------------------------------------------------

@pytest.mark.parametrize("default", ["chatterbox-turbo", "marvis"])
def test_demo_voice_file_is_read_by_qwen_whatever_the_default_engine(settings, transcriber, engine, ja_clip,
                                                                     tmp_path, default):
    clip, text = ja_clip
    items = engine.model.create_voice_clone_prompt(ref_audio=(clip.samples, clip.rate), ref_text=text)
    path = tmp_path / "demo.pt"
    torch.save({"items": [asdict(item) for item in items]}, path)
    studio = Studio(settings.replace(engine=default, voices_dir=tmp_path / "voices"), transcriber=transcriber)
    voice = studio.import_voice(path, "From Demo")
    assert not voice.has_reference and voice.prompts == [engine.fingerprint]
    take = studio.synthesize(SpeakRequest("Hello.", "English", voice="From Demo", engine="qwen",
                                          sampling=Sampling(seed=1, max_seconds=0.4)))
    assert len(take.samples) == 5 * 1920
    with pytest.raises(InvalidInput, match="no reference audio"):
        studio.synthesize(SpeakRequest("Hello.", "English", voice="From Demo"))  # the default engine cannot


@pytest.fixture()
def tone(monkeypatch):
    monkeypatch.setitem(registry.ENGINES, "tone", "tests.tone_engine:ToneEngine")


def test_an_audio_only_engine_works_through_the_core_and_the_page(settings, transcriber, ja_clips, tmp_path, tone):
    from studio.ui import StudioUI

    studio = Studio(settings.replace(engine="tone", voices_dir=tmp_path), transcriber=transcriber)
    entry = ja_clips[0]
    voice = studio.save_voice(NewVoice("Toned", entry["path"], entry["text"], "Japanese", "icl"))
    request = SpeakRequest("Tones for every word. And more words here.", "English", voice=voice.name,
                           sampling=Sampling(seed=3))
    take = studio.synthesize(request)
    assert take.rate == 16000 and take.sentences == 2 and take.duration > 0.5
    streamed = np.concatenate([c.samples for c in studio.stream(request)])
    np.testing.assert_array_equal(streamed, take.samples)
    takes = studio.synthesize_takes(request, 3)  # two rounds: the engine makes two takes at once
    assert [t.seed for t in takes] == [3, 4, 5] and np.array_equal(takes[0].samples, take.samples)
    events = list(studio.compare_events(CompareRequest("Which one?", "English", (Column(voice="Toned"),
                                                                                  Column(voice="Toned", engine="qwen")),
                                                       sampling=Sampling(max_seconds=0.4))))
    rates = {event[1]: event[4] for event in events if event[0] == "chunk"}
    assert rates == {0: 16000, 1: 24000}  # each column's live audio at its engine's rate
    ui = StudioUI(studio)
    ui.build()  # a mode none of the model engines has does not break the page
    languages, modes, note = ui.preview.engine_form("tone", "English", "icl")
    assert modes["choices"] == [("timbre", "timbre")] and modes["value"] == "timbre" and "**Tone**" in note


# -- the doors agree -------------------------------------------------------------------------------

@pytest.fixture()
def bare_app(settings, transcriber, tmp_path):
    """The speech routes on a bare FastAPI app, over a studio whose library is empty."""
    from fastapi import FastAPI
    from starlette.testclient import TestClient

    from studio.server import add_routes

    studio = Studio(settings.replace(voices_dir=tmp_path / "empty", marvis_model=str(tmp_path / "missing")),
                    transcriber=transcriber)
    app = FastAPI()
    add_routes(app, studio)
    return studio, TestClient(app)


def test_doors_answer_a_missing_default_voice_alike(bare_app):
    from studio.ui import StudioUI

    studio, http = bare_app
    with pytest.raises(VoiceNotFound) as caught:
        studio.synthesize(SpeakRequest("Hello."))
    message = str(caught.value)
    with pytest.raises(VoiceNotFound, match="no default voice"):
        list(StudioUI(studio).preview.synthesize("Hello."))
    reply = http.post("/v1/audio/speech", json={"input": "Hello."})
    assert reply.status_code == 404 and reply.json()["error"]["message"] == message
    with http.websocket_connect("/api/v1/speak") as socket:
        socket.send_text(json.dumps({"type": "start"}))
        assert socket.receive_json() == {"type": "error", "message": message}


def test_doors_refuse_a_mode_the_engine_lacks_alike(bare_app, ja_clips):
    from studio.ui import StudioUI

    studio, http = bare_app
    entry = ja_clips[0]
    with pytest.raises(InvalidInput) as caught:
        studio.synthesize(SpeakRequest("Hello.", reference=entry["path"], mode="icl", engine="chatterbox-turbo"))
    message = str(caught.value)
    assert message.startswith("Chatterbox-Turbo clones in x-vector (reference audio alone) only")
    with pytest.raises(InvalidInput) as ui_caught:
        list(StudioUI(studio).preview.synthesize("Hello.", reference=str(entry["path"]), mode="icl",
                                         engine="chatterbox-turbo"))
    assert str(ui_caught.value) == message
    studio.save_voice(NewVoice("Someone", entry["path"], entry["text"], "Japanese", "icl"))
    with http.websocket_connect("/api/v1/speak") as socket:
        socket.send_text(json.dumps({"type": "start", "voice": "Someone", "engine": "chatterbox-turbo",
                                     "mode": "icl"}))
        assert socket.receive_json() == {"type": "error", "message": message}


def test_a_model_that_cannot_load_is_the_servers_state_not_the_clients_fault(bare_app, ja_clips):
    from studio.errors import LibraryBusy
    from studio.server import studio_error

    studio, http = bare_app
    entry = ja_clips[0]
    studio.save_voice(NewVoice("Someone", entry["path"], entry["text"], "Japanese", "icl"))
    reply = http.post("/v1/audio/speech", json={"input": "Hello.", "voice": "Someone", "model": "marvis"})
    assert reply.status_code == 503 and "Marvis" in reply.json()["error"]["message"]
    assert studio_error(LibraryBusy("The library is busy.")).status_code == 409


def test_text_is_validated_once_whatever_the_door(bare_app, monkeypatch):
    import studio.studio as core
    from studio.ui import StudioUI

    studio, http = bare_app
    calls = []
    original = core.validate_text

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(core, "validate_text", counted)
    for door in (lambda: list(StudioUI(studio).preview.synthesize("Hello.")),
                 lambda: http.post("/v1/audio/speech", json={"input": "Hello."})):
        calls.clear()
        try:
            door()
        except VoiceNotFound:
            pass
        assert len(calls) == 1
