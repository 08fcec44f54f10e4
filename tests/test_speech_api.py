"""The speech routes for apps on a live server, driven by real clients: websockets, the openai SDK, httpx."""

import asyncio
import base64
import io
import json

import httpx
import numpy as np
import pytest
import soundfile as sf
import websockets

from studio.config import SAMPLES_PER_FRAME
from studio.studio import NewVoice
from tests.conftest import wait_until_idle

FRAMES = 6  # per utterance (max_frames): the tiny random model never says end-of-speech


@pytest.fixture(scope="module")
def voice(studio, ja_clips):
    saved = studio.save_voice(NewVoice("App Voice", ja_clips[0]["path"], ja_clips[0]["text"]))
    studio.set_default_voice(saved.name)
    return saved.name


def run_async(coroutine):
    """asyncio.run on a thread of its own: Playwright's sync API may own this thread's event loop."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def ws_url(live_server):
    return live_server.replace("http://", "ws://") + "api/v1/speak"


async def receive(socket):
    message = await asyncio.wait_for(socket.recv(), timeout=60)
    return message if isinstance(message, bytes) else json.loads(message)


async def start(socket, **options):
    await socket.send(json.dumps({"type": "start", "max_frames": FRAMES, "seed": 1, **options}))
    return await receive(socket)


async def utterance(socket):
    """Messages of one utterance: the audio bytes, its chunk messages, and the complete message."""
    chunks, audio = [], b""
    while True:
        message = await receive(socket)
        if isinstance(message, bytes):
            audio += message
            continue
        if message["type"] == "audio_chunk":
            chunks.append(message)
            audio += base64.b64decode(message["data"])
        elif message["type"] == "complete":
            return audio, chunks, message
        else:
            raise AssertionError(f"unexpected message {message}")


def test_speak_several_utterances_in_order(live_server, voice):
    async def scenario():
        async with websockets.connect(ws_url(live_server)) as socket:
            ready = await start(socket, voice=voice)
            assert ready["type"] == "ready" and len(ready["session_id"]) == 36
            for text in ("First line.", "Second line.", "Third line."):
                await socket.send(json.dumps({"type": "speak", "text": text}))
            results = [await utterance(socket) for _ in range(3)]
        for number, (audio, chunks, done) in enumerate(results, start=1):
            assert done["utterance"] == number and all(c["utterance"] == number for c in chunks)
            assert [c["index"] for c in chunks] == list(range(len(chunks)))
            assert [c["is_final"] for c in chunks] == [False] * (len(chunks) - 1) + [True]
            assert len(audio) == 2 * FRAMES * SAMPLES_PER_FRAME == 2 * done["samples"]
            assert np.abs(np.frombuffer(audio, "<i2")).max() > 100  # real audio

    run_async(scenario())


def test_a_voice_can_speak_in_the_other_cloning_mode(live_server, voice):
    async def scenario():
        async with websockets.connect(ws_url(live_server)) as socket:
            await start(socket, voice=voice, mode="xvector")
            await socket.send(json.dumps({"type": "speak", "text": "In the other mode."}))
            return await utterance(socket)

    audio, _, done = run_async(scenario())
    assert done["samples"] == FRAMES * SAMPLES_PER_FRAME == len(audio) // 2


def test_pcm16_at_16khz_is_resampled_to_the_right_length(live_server, voice):
    async def scenario():
        async with websockets.connect(ws_url(live_server)) as socket:
            await start(socket, sample_rate=16000, encoding="pcm16")
            await socket.send(json.dumps({"type": "speak", "text": "Sixteen kilohertz."}))
            return await utterance(socket)

    audio, _, done = run_async(scenario())
    samples = np.frombuffer(audio, "<i2")
    assert abs(len(samples) - FRAMES * SAMPLES_PER_FRAME * 16000 // 24000) <= 1
    assert done["samples"] == len(samples) and done["duration"] == pytest.approx(len(samples) / 16000, abs=1e-3)


def test_f32_in_binary_frames(live_server, voice):
    async def scenario():
        async with websockets.connect(ws_url(live_server)) as socket:
            await start(socket, encoding="f32", binary=True)
            await socket.send(json.dumps({"type": "speak", "text": "Binary frames."}))
            return await utterance(socket)

    audio, chunks, done = run_async(scenario())
    samples = np.frombuffer(audio, "<f4")
    assert chunks == [] and len(samples) == FRAMES * SAMPLES_PER_FRAME == done["samples"]
    assert np.abs(samples).max() <= 1.0


def test_first_chunk_arrives_while_the_model_is_still_generating(live_server, voice, studio):
    async def scenario():
        async with websockets.connect(ws_url(live_server)) as socket:
            await start(socket, max_frames=300)
            await socket.send(json.dumps({"type": "speak", "text": "A long one."}))
            first = await receive(socket)
            still_generating = studio.engine.busy
            await socket.send(json.dumps({"type": "cancel"}))
            return first, still_generating

    first, still_generating = run_async(scenario())
    assert first["type"] == "audio_chunk" and first["index"] == 0 and still_generating
    assert wait_until_idle(studio.engine)


def test_cancel_drops_the_utterance_in_progress_and_the_queue(live_server, voice, studio):
    async def scenario():
        async with websockets.connect(ws_url(live_server)) as socket:
            await start(socket, max_frames=400)
            for text in ("Long one.", "Queued one.", "Another queued."):
                await socket.send(json.dumps({"type": "speak", "text": text}))
            first = await receive(socket)
            await socket.send(json.dumps({"type": "cancel"}))
            while (message := await receive(socket))["type"] != "cancelled":
                assert message["utterance"] == 1  # chunks already on their way
            idle = await asyncio.to_thread(wait_until_idle, studio.engine)
            # The session is still usable.
            await socket.send(json.dumps({"type": "speak", "text": "After the cancel.", "max_frames": 4}))
            audio, _, done = await utterance(socket)
            return first, message, idle, done

    first, cancelled, idle, done = run_async(scenario())
    assert first["utterance"] == 1 and cancelled["utterances"] == [1, 2, 3]
    assert idle and done["utterance"] == 4


def test_closing_the_socket_mid_utterance_frees_the_engine(live_server, voice, studio):
    async def scenario():
        socket = await websockets.connect(ws_url(live_server))
        await start(socket, max_frames=600)
        await socket.send(json.dumps({"type": "speak", "text": "I will hang up."}))
        await receive(socket)
        await socket.close()

    run_async(scenario())
    assert wait_until_idle(studio.engine, 10)
    assert studio.engine.generation_lock.acquire()  # nobody holds the engine any more
    studio.engine.generation_lock.release()


@pytest.mark.parametrize("message, answer", [
    ("this is not json", "not valid JSON"),
    ("[1, 2, 3]", '"type"'),
    ('{"type": "dance"}', "Unknown message type 'dance'"),
    ('{"type": "speak", "text": "Too early."}', "before speak"),
])
def test_bad_messages_before_start_are_answered(live_server, voice, message, answer):
    async def scenario():
        async with websockets.connect(ws_url(live_server)) as socket:
            await socket.send(message)
            reply = await receive(socket)
            ready = await start(socket)  # still usable
            return reply, ready

    reply, ready = run_async(scenario())
    assert reply["type"] == "error" and answer in reply["message"]
    assert ready["type"] == "ready"


@pytest.mark.parametrize("options, answer", [
    ({"voice": "Nobody Here"}, "no voice named 'Nobody Here'"),
    ({"sample_rate": 1000}, "sample_rate must be"),
    ({"sample_rate": "fast"}, "sample_rate must be"),
    ({"encoding": "mp3"}, "encoding must be one of"),
    ({"language": "Klingon"}, "not supported"),
    ({"temperature": 9}, "temperature must be"),
    ({"binary": "yes"}, "binary must be"),
    ({"mode": "magic"}, "only, not magic"),
])
def test_bad_start_messages_are_answered_and_the_session_survives(live_server, voice, options, answer):
    async def scenario():
        async with websockets.connect(ws_url(live_server)) as socket:
            reply = await start(socket, **options)
            ready = await start(socket)
            return reply, ready

    reply, ready = run_async(scenario())
    assert reply["type"] == "error" and answer in reply["message"]
    assert ready["type"] == "ready"


def test_bad_speak_messages_are_answered(live_server, voice, studio):
    limit = studio.settings.max_text_chars

    async def scenario():
        async with websockets.connect(ws_url(live_server)) as socket:
            await start(socket)
            replies = []
            for message in ({"type": "speak"}, {"type": "speak", "text": "   "},
                            {"type": "speak", "text": "x" * (limit + 1)}, {"type": "start"}):
                await socket.send(json.dumps(message))
                replies.append(await receive(socket))
            await socket.send(json.dumps({"type": "speak", "text": "Still here."}))
            audio, _, done = await utterance(socket)
            return replies, done

    replies, done = run_async(scenario())
    assert [r["type"] for r in replies] == ["error"] * 4
    assert "needs \"text\"" in replies[0]["message"] and f"limit is {limit}" in replies[2]["message"]
    assert "already started" in replies[3]["message"]
    assert done["utterance"] == 1


def test_too_many_queued_utterances_are_refused(live_server, voice, studio):
    from studio.server import MAX_QUEUED

    async def scenario():
        async with websockets.connect(ws_url(live_server)) as socket:
            await start(socket, max_frames=300)
            for i in range(MAX_QUEUED + 1):
                await socket.send(json.dumps({"type": "speak", "text": f"Number {i}."}))
            while (message := await receive(socket))["type"] != "error":
                pass
            await socket.send(json.dumps({"type": "cancel"}))
            return message

    assert "limit is" in run_async(scenario())["message"]
    assert wait_until_idle(studio.engine)


def test_eight_concurrent_sessions_all_complete_in_order(live_server, voice):
    """A load test on loopback: 8 clients x 3 utterances, every sample accounted for, in order."""

    async def client(number):
        async with websockets.connect(ws_url(live_server)) as socket:
            await start(socket, seed=number, sample_rate=22050)
            for i in range(3):
                await socket.send(json.dumps({"type": "speak", "text": f"Client {number} line {i}."}))
            return [await utterance(socket) for _ in range(3)]

    async def everyone():
        return await asyncio.gather(*(client(n) for n in range(8)))

    results = run_async(everyone())
    expected = round(FRAMES * SAMPLES_PER_FRAME * 22050 / 24000)
    for sessions in results:
        assert [done["utterance"] for _, _, done in sessions] == [1, 2, 3]
        for audio, _, done in sessions:
            assert abs(len(audio) // 2 - expected) <= 1 and done["samples"] == len(audio) // 2


# -- OpenAI-compatible routes ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def openai_client(live_server):
    from openai import OpenAI

    return OpenAI(base_url=live_server + "v1", api_key="not-needed-on-localhost")


def test_openai_sdk_speech_create(openai_client, voice):
    response = openai_client.audio.speech.create(model="qwen3-tts", voice=voice, input="Hello from the SDK.",
                                                 response_format="wav", extra_body={"max_frames": FRAMES})
    samples, rate = sf.read(io.BytesIO(response.content))
    assert rate == 24000 and len(samples) == FRAMES * SAMPLES_PER_FRAME


def test_openai_sdk_streaming_response(openai_client, voice):
    with openai_client.audio.speech.with_streaming_response.create(
            model="qwen3-tts", voice=voice, input="Streamed to the SDK.", response_format="pcm",
            extra_body={"max_frames": FRAMES}) as response:
        parts = list(response.iter_bytes())
    assert len(b"".join(parts)) == 2 * FRAMES * SAMPLES_PER_FRAME and len(parts) >= 2


@pytest.mark.parametrize("response_format", ["mp3", "opus", "flac"])
def test_compressed_formats_decode(live_server, voice, response_format):
    import av

    response = httpx.post(live_server + "v1/audio/speech", timeout=60,
                          json={"model": "qwen3-tts", "voice": voice, "input": "Compressed.", "max_frames": FRAMES,
                                "response_format": response_format})
    assert response.status_code == 200
    with av.open(io.BytesIO(response.content)) as container:
        decoded = sum(frame.samples / frame.sample_rate for frame in container.decode(audio=0))
    assert decoded == pytest.approx(FRAMES * SAMPLES_PER_FRAME / 24000, abs=0.08)


def test_httpx_first_bytes_arrive_while_generating(live_server, voice, studio):
    body = {"model": "qwen3-tts", "voice": voice, "input": "Long enough to stream.", "response_format": "wav",
            "max_frames": 300}
    with httpx.stream("POST", live_server + "v1/audio/speech", json=body, timeout=60) as response:
        first = next(response.iter_bytes())
        still_generating = studio.engine.busy
    assert response.status_code == 200 and first[:4] == b"RIFF" and still_generating
    assert wait_until_idle(studio.engine)  # leaving early stopped generation


@pytest.mark.parametrize("body, status, answer", [
    ({"model": "m", "voice": "App Voice"}, 400, "'input'"),
    ({"model": "m", "input": "Hi", "voice": "Nobody"}, 404, "no voice named"),
    ({"model": "m", "input": "Hi", "response_format": "aiff"}, 400, "response_format"),
    ({"model": "m", "input": "Hi", "speed": 2.0}, 400, "speed"),
    ({"model": "m", "input": "Hi", "speed": 9}, 400, "0.25 to 4.0"),
    ({"model": "m", "input": "Hi", "language": "Klingon"}, 400, "not supported"),
])
def test_openai_errors_have_openai_shape(live_server, voice, body, status, answer):
    response = httpx.post(live_server + "v1/audio/speech", json=body, timeout=60)
    assert response.status_code == status
    error = response.json()["error"]
    assert answer in error["message"] and error["type"]


def test_non_json_body_is_refused(live_server):
    response = httpx.post(live_server + "v1/audio/speech", content=b"{{{", timeout=30)
    assert response.status_code == 400 and "JSON object" in response.json()["error"]["message"]


def test_voices_and_models_are_listed(live_server, voice, studio):
    voices = httpx.get(live_server + "v1/audio/voices", timeout=30).json()
    assert {"id": voice} .items() <= next(v for v in voices["data"] if v["id"] == voice).items()
    assert next(v for v in voices["data"] if v["id"] == voice)["default"] is True
    models = httpx.get(live_server + "v1/models", timeout=30).json()
    assert models["data"][0]["id"] == studio.settings.model


# -- access ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def page_tickets():
    from studio.tickets import Tickets

    return Tickets()


@pytest.fixture(scope="module")
def keyed_server(studio, page_tickets):
    from app import launch
    from studio.studio import Studio
    from tests.conftest import free_port

    port = free_port()
    keyed = Studio(studio.settings.replace(port=port, api_key="s3cret-key"), studio.engine, studio.library,
                   studio.transcriber)
    demo = launch(keyed, block=False, quiet=True, tickets=page_tickets)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def test_api_key_is_required_when_set(keyed_server, voice):
    body = {"model": "m", "input": "Hi", "response_format": "pcm", "max_frames": 2}
    refused = httpx.post(keyed_server + "v1/audio/speech", json=body, timeout=30)
    assert refused.status_code == 401 and "API key" in refused.json()["error"]["message"]
    wrong = httpx.post(keyed_server + "v1/audio/speech", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    allowed = httpx.post(keyed_server + "v1/audio/speech", json=body, timeout=60,
                         headers={"Authorization": "Bearer s3cret-key"})
    assert allowed.status_code == 200 and len(allowed.content) == 2 * 2 * SAMPLES_PER_FRAME

    async def sockets():
        url = ws_url(keyed_server)
        with pytest.raises(websockets.exceptions.InvalidStatus):
            async with websockets.connect(url) as socket:
                await socket.recv()
        async with websockets.connect(url, additional_headers={"Authorization": "Bearer s3cret-key"}) as socket:
            return await start(socket)

    assert run_async(sockets())["type"] == "ready"


def test_a_page_ticket_admits_one_connection_without_the_key(keyed_server, voice, page_tickets, studio, ja_clips):
    """The studio's own page streams with a ticket: its request (an uploaded clip here) and no API key."""
    from studio.engines import Sampling
    from studio.studio import SpeakRequest

    entry = ja_clips[1]
    request = SpeakRequest("From the page.", "English", reference=str(entry["path"]), ref_text=entry["text"],
                           sampling=Sampling(seed=5, max_seconds=FRAMES / 12.5))
    ticket = page_tickets.issue(request)
    url = f"{ws_url(keyed_server)}?ticket={ticket}"

    async def page():
        async with websockets.connect(url) as socket:
            assert (await start(socket, encoding="f32", voice="ignored: the ticket chose"))["type"] == "ready"
            await socket.send(json.dumps({"type": "speak", "text": "From the page."}))
            return await utterance(socket)

    audio, chunks, complete = run_async(page())
    assert len(audio) == 4 * FRAMES * SAMPLES_PER_FRAME and complete["seed"] == 5
    kept = studio.history.get(complete["take"])
    assert kept.voice == "the reference clip" and 0 < complete["time_to_first_audio"] <= complete["total_time"]

    async def again():
        with pytest.raises((websockets.exceptions.InvalidStatus, websockets.exceptions.ConnectionClosed)):
            async with websockets.connect(url) as socket:
                await socket.recv()

    run_async(again())  # a used ticket admits nothing


def page_url(server):
    return server.replace("http://", "ws://") + "api/v1/live"


async def closed_because(socket) -> tuple[int, str]:
    with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
        await asyncio.wait_for(socket.recv(), timeout=30)
    return closed.value.rcvd.code, closed.value.rcvd.reason


def test_the_page_socket_opens_ahead_and_acts_only_on_a_ticket(keyed_server, voice, page_tickets, studio, ja_clips):
    """The page opens /api/v1/live before it has a ticket (no key, behind --api-key); only a ticket makes it speak."""
    from studio.engines import Sampling
    from studio.studio import SpeakRequest

    entry = ja_clips[1]
    request = SpeakRequest("Opened ahead.", "English", reference=str(entry["path"]), ref_text=entry["text"],
                           sampling=Sampling(seed=6, max_seconds=FRAMES / 12.5))

    async def page():
        async with websockets.connect(page_url(keyed_server)) as socket:
            await asyncio.sleep(0.3)  # open before the click: the ticket comes later
            ticket = page_tickets.issue(request)
            await socket.send(json.dumps({"type": "ticket", "ticket": ticket}))
            assert (await receive(socket))["type"] == "ready"
            heard = await utterance(socket)
        async with websockets.connect(page_url(keyed_server)) as socket:  # the same ticket again
            await socket.send(json.dumps({"type": "ticket", "ticket": ticket}))
            used = await closed_because(socket)
        async with websockets.connect(page_url(keyed_server)) as socket:  # anything but a ticket
            await socket.send(json.dumps({"type": "start", "voice": voice}))
            other = await closed_because(socket)
        return heard, used, other

    (audio, chunks, complete), used, other = run_async(page())
    assert len(audio) == 4 * FRAMES * SAMPLES_PER_FRAME and complete["seed"] == 6  # f32 at the engine's rate
    assert studio.history.get(complete["take"]).text == "Opened ahead."
    assert used == (1008, "This stream ticket is used or expired: click Stream again.")
    assert other == (1008, "No stream ticket was sent.")


def test_the_page_socket_relays_a_runs_feed(keyed_server, page_tickets):
    """A Compare ticket stands for a feed: the socket sends each take's part, audio and end as the run makes them."""
    from studio.feeds import Feed

    feed = Feed()
    ticket = page_tickets.issue(feed)
    samples = np.linspace(-0.5, 0.5, 1200, dtype=np.float32)

    async def page():
        async with websockets.connect(page_url(keyed_server)) as socket:
            await socket.send(json.dumps({"type": "ticket", "ticket": ticket}))
            feed.part("Column 1 (Ann)", {"rate": 24000, "expected": 0.1, "plan": [0.08]})
            feed.audio(samples, 24000)
            feed.part_end(time_to_first_audio=0.04)
            feed.finish()
            return [json.loads(await asyncio.wait_for(socket.recv(), 30)) for _ in range(4)]

    messages = run_async(page())
    assert [m["type"] for m in messages] == ["part", "audio_chunk", "part_end", "complete"]
    assert messages[0]["label"] == "Column 1 (Ann)" and messages[1]["rate"] == 24000
    assert np.array_equal(np.frombuffer(base64.b64decode(messages[1]["data"]), np.float32), samples)
    assert feed.listening and messages[2]["time_to_first_audio"] == 0.04


def test_auth_without_api_key_closes_the_speech_routes(settings):
    from studio.server import AccessDenied, check_access

    with pytest.raises(AccessDenied, match="--api-key"):
        check_access(settings.replace(auth=("ann", "pw")), None)
    check_access(settings, None)  # localhost, no key set: open


def test_public_studio_without_auth_refuses_to_start(settings):
    from app import exposure_problem

    assert "refusing to start" in exposure_problem(settings.replace(share=True))
    assert "0.0.0.0" in exposure_problem(settings.replace(host="0.0.0.0"))
    assert exposure_problem(settings.replace(share=True, auth=("a", "b"))) is None
    assert exposure_problem(settings.replace(share=True, allow_anonymous=True)) is None
    assert exposure_problem(settings) is None


def test_example_client_saves_each_line(live_server, voice, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "examples" / "speak_client.py"
    result = subprocess.run([sys.executable, str(script), "Hello, how can I help?", "Second line.", "--url",
                             ws_url(live_server), "--voice", voice, "--rate", "16000", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ("01.wav", "02.wav"):
        samples, rate = sf.read(tmp_path / name)
        assert rate == 16000 and len(samples) > 16000 // 2


def test_openai_route_and_websocket_can_use_another_engine(live_server, voice, openai_client):
    response = openai_client.audio.speech.create(model="chatterbox-turbo", voice=voice, input="Hello [laugh]",
                                                 response_format="wav",
                                                 extra_body={"max_frames": 12, "temperature": 0})
    samples, rate = sf.read(io.BytesIO(response.content))
    assert rate == 24000 and len(samples) == (24 + 3) * 960  # 12 x 80 ms = 24 tokens of 40 ms, closing silence

    async def scenario():
        async with websockets.connect(ws_url(live_server)) as socket:
            ready = await start(socket, voice=voice, engine="chatterbox-turbo", max_frames=12, temperature=0)
            await socket.send(json.dumps({"type": "speak", "text": "Through the other engine."}))
            spoken = await utterance(socket)
        async with websockets.connect(ws_url(live_server)) as socket:
            refused = await start(socket, voice=voice, engine="chatterbox-turbo", mode="icl")
        return ready, spoken, refused

    ready, (audio, _, done), refused = run_async(scenario())
    assert ready["type"] == "ready" and done["samples"] == (24 + 3) * 960 == len(audio) // 2
    assert refused["type"] == "error" and "clones in x-vector (reference audio alone) only" in refused["message"]
    models = [m["id"] for m in httpx.get(live_server + "v1/models", timeout=30).json()["data"]]
    assert "chatterbox-turbo" in models


def test_japanese_text_to_an_english_only_engine_is_refused_in_every_door(live_server, voice, studio):
    """Before any generation: the OpenAI route, the WebSocket and the core say which engine cannot speak it."""
    from studio.errors import InvalidInput
    from studio.studio import SpeakRequest

    body = {"model": "chatterbox-turbo", "input": "今日はいい天気ですね。", "response_format": "pcm"}
    refused = httpx.post(live_server + "v1/audio/speech", json=body, timeout=60)
    assert refused.status_code == 400
    assert "written in Japanese, and Chatterbox-Turbo speaks English only" in refused.json()["error"]["message"]

    async def socket_door():
        async with websockets.connect(ws_url(live_server)) as socket:
            await start(socket, engine="chatterbox-turbo")
            await socket.send(json.dumps({"type": "speak", "text": "今日はいい天気ですね。"}))
            return await receive(socket)

    answer = run_async(socket_door())
    assert answer["type"] == "error" and "Chatterbox-Turbo speaks English only" in answer["message"]
    with pytest.raises(InvalidInput, match="Marvis TTS speaks English only"):
        studio.speech(SpeakRequest("こんにちは", "Auto", engine="marvis"))

