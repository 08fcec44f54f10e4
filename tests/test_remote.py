"""The remote engine against a second real studio process on loopback, and the studio's vLLM-Omni routes.

No mocks: the server is `app.py` with the tiny checkpoint in its own process (tests/conftest.py
`RemoteStudio`); it is killed mid-stream, stopped and started again. The silent server for the
timeout is a real socket that accepts and never answers.
"""

import asyncio
import base64
import io
import json
import re
import socket
import threading

import httpx
import numpy as np
import pytest
import soundfile as sf
import websockets

from studio import audio
from studio.config import SAMPLES_PER_FRAME
from studio.engines import Sampling, create_engine
from studio.errors import ModelUnavailable
from studio.studio import Column, CompareRequest, NewVoice, SpeakRequest, Studio
from tests.conftest import RemoteStudio, free_port
from tests.test_speech_api import run_async

FRAMES = 6  # per sentence: the tiny random model never says end-of-speech
SHORT = Sampling(seed=7, max_seconds=FRAMES / 12.5)


@pytest.fixture(scope="module")
def front(settings, engine, transcriber, remote_studio, tmp_path_factory):
    """A studio whose default engine is remote, pointed at the second studio; its own qwen engine beside it."""
    local = settings.replace(voices_dir=tmp_path_factory.mktemp("front-voices"), engine="remote",
                             remote_url=remote_studio.url)
    studio = Studio(local, transcriber=transcriber)
    studio.engines["qwen"] = engine  # the session's tiny qwen, for Compare against the remote column
    return studio


@pytest.fixture(scope="module")
def voice(front, ja_clips, remote_studio):
    if not remote_studio.running:
        remote_studio.start()
    saved = front.save_voice(NewVoice("Remote Voice", ja_clips[0]["path"], ja_clips[0]["text"]))
    front.set_default_voice(saved.name)
    return saved.name


def request(text="Hello over the network.", **changes):
    return SpeakRequest(text, "English", voice="Remote Voice", sampling=changes.pop("sampling", SHORT), **changes)


def test_the_remote_engine_says_what_the_server_does(front, remote, voice):
    engine = front.engine
    assert engine.name == "remote" and remote.url in engine.status()
    assert engine.capabilities.seeds  # a studio says it honours seeds
    assert "ignores seeds" not in engine.capabilities.describe(engine.label)
    stated = create_engine(front.settings.replace(remote_url=None), "remote").capabilities
    assert not stated.seeds and "ignores seeds" in stated.describe("Remote server")  # vLLM-Omni's defaults


def test_synthesize_takes_through_the_remote_server(front, remote, voice):
    first, second = front.synthesize_takes(request(), 2)
    assert (first.seed, second.seed) == (7, 8)
    for take in (first, second):
        assert len(take.samples) == FRAMES * SAMPLES_PER_FRAME and np.abs(take.samples).max() > 1e-3
    assert not np.array_equal(first.samples, second.samples)
    again = front.synthesize(request())
    assert np.array_equal(again.samples, first.samples)  # the server honours the seed


def test_a_voice_is_uploaded_once_or_sent_with_every_request(front, remote, voice, ja_clips):
    """A studio server keeps uploaded voices; with --remote-upload never (vLLM-Omni's way) the clip goes each time."""
    from tests.conftest import speak_all

    uploading = front.engine
    sending = create_engine(front.settings.replace(remote_upload="never"), "remote")
    assert uploading.uploads and not sending.uploads
    clip = audio.load(ja_clips[2]["path"])
    prompt = uploading.make_prompt(clip, ja_clips[2]["text"], "icl")
    uploaded, _ = speak_all(uploading, "Sent once.", "English", prompt, seeds=(5,), seconds=FRAMES / 12.5)
    sent, _ = speak_all(sending, "Sent once.", "English", prompt, seeds=(5,), seconds=FRAMES / 12.5)
    assert len(uploaded[0]) == len(sent[0]) == FRAMES * SAMPLES_PER_FRAME
    assert np.array_equal(uploaded[0], sent[0])  # the same reference either way
    held = [v for v in httpx.get(remote.url + "/v1/audio/voices", timeout=30).json()["data"]
            if v["name"] == uploading.voice_name(prompt)]
    assert len(held) == 1 and "uploaded" in held[0]["tags"] and "consent" in held[0]["notes"].lower()
    speak_all(uploading, "Again.", "English", prompt, seeds=(5,), seconds=FRAMES / 12.5)
    again = [v for v in httpx.get(remote.url + "/v1/audio/voices", timeout=30).json()["data"]
             if v["name"].startswith("remote-")]
    assert len(again) == len({v["name"] for v in again})  # uploaded once


def test_a_stream_arrives_sentence_by_sentence(front, remote, voice):
    stream = front.stream(request("First sentence here. Second sentence there."))
    chunks = list(stream)
    assert chunks[0].sentence == 0 and {c.sentence for c in chunks} == {0, 1}
    assert stream.take.sentences == 2 and len(stream.take.samples) == 2 * FRAMES * SAMPLES_PER_FRAME


def test_an_uploaded_reference_speaks_remotely_in_both_modes(front, remote, ja_clips):
    for mode, ref_text in (("icl", ja_clips[1]["text"]), ("xvector", None)):
        take = front.synthesize(SpeakRequest("From a reference.", "English", reference=str(ja_clips[1]["path"]),
                                             ref_text=ref_text, mode=mode, sampling=SHORT))
        assert len(take.samples) == FRAMES * SAMPLES_PER_FRAME


def test_compare_a_remote_column_with_a_local_one(front, remote, voice):
    results = front.compare(CompareRequest("Compare these two.", "English",
                                           (Column(voice=voice, engine="remote"), Column(voice=voice, engine="qwen")),
                                           seed=3, sampling=SHORT))
    assert [r.column.engine for r in results] == ["remote", "qwen"]
    for result in results:
        assert len(result.best.take.samples) == FRAMES * SAMPLES_PER_FRAME
        assert result.best.scores.combined is not None


@pytest.fixture(scope="module")
def front_server(front, voice):
    """The front studio's own doors (UI, WebSocket, OpenAI route) on localhost, speaking through the remote."""
    from app import launch

    port = free_port()
    demo = launch(Studio(front.settings.replace(port=port), front.engine, front.library, front.transcriber),
                  block=False, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def test_the_websocket_and_openai_route_of_a_front_studio(front_server, remote, voice):
    async def scenario():
        url = front_server.replace("http://", "ws://") + "api/v1/speak"
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "start", "voice": voice, "max_frames": FRAMES, "seed": 1}))
            assert json.loads(await ws.recv())["type"] == "ready"
            await ws.send(json.dumps({"type": "speak", "text": "Through two studios."}))
            pcm = b""
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 120))
                if message["type"] == "audio_chunk":
                    pcm += base64.b64decode(message["data"])
                elif message["type"] == "complete":
                    return pcm, message
                else:
                    raise AssertionError(message)

    pcm, done = run_async(scenario())  # Playwright may own this thread's event loop
    assert len(pcm) == 2 * FRAMES * SAMPLES_PER_FRAME and done["seed"] == 1
    response = httpx.post(front_server + "v1/audio/speech", timeout=120,
                          json={"input": "The OpenAI route.", "voice": voice, "response_format": "wav",
                                "max_frames": FRAMES})
    samples, rate = sf.read(io.BytesIO(response.content))
    assert response.status_code == 200 and rate == 24000 and len(samples) == FRAMES * SAMPLES_PER_FRAME


def test_a_server_killed_mid_stream_stopped_and_restarted(front, remote, voice, front_server):
    url = re.escape(remote.url)
    stream = front.stream(request("A long sentence that is cut off.", sampling=Sampling(seed=1, max_seconds=60)))
    chunks = iter(stream)
    assert next(chunks) is not None
    remote.kill()
    with pytest.raises(ModelUnavailable, match=url + ".*broke off"):
        for _ in chunks:
            pass
    with pytest.raises(ModelUnavailable, match=url + ".*cannot be reached"):
        front.synthesize(request())
    answer = httpx.post(front_server + "v1/audio/speech", timeout=60,
                        json={"input": "Down.", "voice": voice, "response_format": "pcm", "max_frames": FRAMES})
    assert answer.status_code == 503 and remote.url in answer.json()["error"]["message"]
    assert [v["name"] for v in front.list_voices()] == [voice]  # nothing saved is lost
    remote.start()
    assert len(front.synthesize(request()).samples) == FRAMES * SAMPLES_PER_FRAME  # works again


def test_an_address_that_is_not_a_speech_server_is_named(front, remote):
    engine = create_engine(front.settings.replace(remote_url=remote.url + "/nowhere"), "remote")
    with pytest.raises(Exception, match=re.escape(remote.url + "/nowhere")):
        engine.load()


def test_a_silent_server_times_out_with_a_message(front):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        engine = create_engine(front.settings.replace(remote_url=url, remote_timeout=1.0), "remote")
        with pytest.raises(ModelUnavailable, match=re.escape(url) + ".*within 1 s"):
            engine.load()
    finally:
        for connection, _ in accepted:
            connection.close()
        listener.close()


# -- the studio's own vLLM-Omni routes --------------------------------------------------------------

def data_url(clip: audio.Clip) -> str:
    wav = audio.to_wav_bytes(audio.resample(clip, 24000).samples, 24000)
    return "data:audio/wav;base64," + base64.b64encode(wav).decode()


def test_vllm_omni_fields_on_the_speech_route(remote, ja_clips):
    clip = audio.load(ja_clips[2]["path"])
    body = {"input": "Cloned from a data URL.", "task_type": "Base", "language": "English",
            "ref_audio": data_url(clip), "ref_text": ja_clips[2]["text"], "stream": True,
            "response_format": "pcm", "max_new_tokens": FRAMES, "seed": 2}
    icl = httpx.post(remote.url + "/v1/audio/speech", json=body, timeout=120)
    assert icl.status_code == 200 and len(icl.content) == 2 * FRAMES * SAMPLES_PER_FRAME
    xvector = httpx.post(remote.url + "/v1/audio/speech", timeout=120,
                         json=dict(body, x_vector_only_mode=True, ref_text=None))
    assert xvector.status_code == 200 and len(xvector.content) == len(icl.content) != 0
    assert xvector.content != icl.content
    for change, words in (({"ref_audio": "https://example.com/a.wav"}, "fetches no"),
                          ({"task_type": "CustomVoice"}, "task_type must be Base"),
                          ({"ref_audio": "data:audio/wav;base64,@@@"}, "not valid base64"),
                          ({"max_new_tokens": 0}, "max_new_tokens")):
        refused = httpx.post(remote.url + "/v1/audio/speech", json=dict(body, **change), timeout=60)
        assert refused.status_code == 400 and words in refused.json()["error"]["message"]


def test_a_fifteen_second_reference_fits_the_body_limit(remote, ja_clips):
    clips = [audio.resample(audio.load(entry["path"]), 24000).samples for entry in ja_clips]
    samples = np.concatenate(clips * 4)[:15 * 24000]
    body = {"input": "A long reference.", "task_type": "Base", "ref_audio": data_url(audio.Clip(samples, 24000)),
            "x_vector_only_mode": True, "response_format": "pcm", "max_new_tokens": 2}
    assert len(json.dumps(body)) > 900_000  # about 1 MB, far over the old 64 kB
    answer = httpx.post(remote.url + "/v1/audio/speech", json=body, timeout=120)
    assert answer.status_code == 200 and len(answer.content) == 2 * 2 * SAMPLES_PER_FRAME


def test_a_body_declared_too_large_is_refused_before_it_is_sent(remote):
    with socket.create_connection(("127.0.0.1", remote.port), timeout=30) as connection:
        connection.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Content-Type: application/json\r\nContent-Length: 900000000\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += connection.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413")


def test_a_body_without_a_declared_length_is_cut_off_at_the_limit(remote):
    def chunks():  # sent with chunked transfer encoding: no Content-Length to refuse it by
        for _ in range(40):
            yield b" " * 256 * 1024

    answer = httpx.post(remote.url + "/v1/audio/speech", content=chunks(), timeout=60,
                        headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and "at most" in answer.json()["error"]["message"]


def test_voice_upload_with_consent(remote, ja_clips):
    path = ja_clips[1]["path"]
    form = {"name": "Uploaded Voice", "consent": "consent-2026-001", "ref_text": ja_clips[1]["text"],
            "language": "Japanese"}
    with open(path, "rb") as handle:
        answer = httpx.post(remote.url + "/v1/audio/voices", data=form, timeout=120,
                            files={"audio_sample": (path.name, handle, "audio/flac")})
    assert answer.status_code == 200, answer.text
    saved = answer.json()["voice"]
    assert saved["name"] == "Uploaded Voice" and saved["consent"] == "consent-2026-001" and saved["mode"] == "icl"
    listing = httpx.get(remote.url + "/v1/audio/voices", timeout=30).json()
    listed = {v["name"]: v for v in listing["data"]}
    assert "Uploaded Voice" in listing["voices"]  # vLLM-Omni's shape too
    assert "consent-2026-001" in listed["Uploaded Voice"]["notes"]
    spoken = httpx.post(remote.url + "/v1/audio/speech", timeout=120,
                        json={"input": "My uploaded voice.", "task_type": "Base", "voice": "Uploaded Voice",
                              "response_format": "pcm", "max_new_tokens": FRAMES})
    assert spoken.status_code == 200 and len(spoken.content) == 2 * FRAMES * SAMPLES_PER_FRAME
    with open(path, "rb") as handle:
        refused = httpx.post(remote.url + "/v1/audio/voices", data={"name": "No Consent"}, timeout=60,
                             files={"audio_sample": (path.name, handle, "audio/flac")})
    assert refused.status_code == 400 and "consent is required" in refused.json()["error"]["message"]


def test_the_ui_says_the_server_is_down_and_works_again_when_it_is_back(front_server, remote, ja_clips):
    from gradio_client import Client, handle_file

    entry = ja_clips[1]
    client = Client(front_server, verbose=False)
    args = dict(text="Through the page.", language="English", reference=handle_file(str(entry["path"])),
                ref_text=entry["text"], mode="icl", temperature=0.9, top_p=1.0, top_k=50, repetition_penalty=1.05,
                seed=4, max_frames=FRAMES, api_name="/synthesize")
    remote.stop()
    with pytest.raises(Exception, match=re.escape(remote.url) + ".*cannot be reached"):
        client.predict(**args)
    remote.start()
    wav_path, summary = client.predict(**args)
    samples, rate = sf.read(wav_path)
    assert rate == 24000 and len(samples) == FRAMES * SAMPLES_PER_FRAME and "seed 4" in summary


def test_a_server_with_a_key_takes_the_right_key_and_names_a_wrong_one(front, tiny_checkpoint, whisper_dir, tmp_path,
                                                                        ja_clips):
    keyed = RemoteStudio(tiny_checkpoint, whisper_dir, tmp_path / "voices", tmp_path / "keyed.log",
                         "--api-key", "right-key").start()
    try:
        key_file = tmp_path / "remote.key"
        key_file.write_text("right-key\n")
        from studio.config import Settings

        parsed = Settings.from_args(["--remote-url", keyed.url + "/v1/", "--remote-key", f"@{key_file}"])
        assert parsed.remote_url == keyed.url and parsed.remote_key == "right-key"
        wrong = create_engine(front.settings.replace(remote_url=keyed.url, remote_key="wrong-key"), "remote")
        with pytest.raises(ModelUnavailable, match=re.escape(keyed.url) + ".*refused the key.*--remote-key"):
            wrong.load()
        right = create_engine(front.settings.replace(remote_url=keyed.url, remote_key=parsed.remote_key), "remote")
        prompt = right.make_prompt(audio.load(ja_clips[0]["path"]), ja_clips[0]["text"], "icl")
        from tests.conftest import speak_all

        spoken, _ = speak_all(right, "With a key.", "English", prompt, seeds=(1,), seconds=FRAMES / 12.5)
        assert len(spoken[0]) == FRAMES * SAMPLES_PER_FRAME
    finally:
        keyed.stop()


def test_bad_remote_urls_are_refused_at_start():
    from studio.config import Settings

    for url in ("gpu-box:8091", "ftp://gpu-box", "http://"):
        with pytest.raises(SystemExit):
            Settings.from_args(["--remote-url", url])
