"""Continuous batching: requests join Qwen3-TTS's running batch at the next frame and leave it when done.

On the tiny float32 checkpoint a request's audio must not depend on who shared its
batch: greedy and seeded takes are the same alone or joined mid-stream, one request's
stop or budget never touches another's, and the batch keeps to --max-batch.
"""

import json

import numpy as np
import pytest

from studio.config import SAMPLES_PER_FRAME
from studio.engines import Sampling, SpeakJob, create_engine
from studio.studio import NewVoice, SpeakRequest
from tests.conftest import row_trace
from tests.test_speech_api import run_async, ws_url

FRAME = 1 / 12.5
TEXTS = ["The first of several lines.", "A second, rather different line of text.", "Third one here.",
         "And a fourth to fill the batch.", "Five.", "Six is a number too.", "Seven lines now.", "Eight at last."]


@pytest.fixture(scope="module")
def prompts(engine, ja_clips):
    from studio import audio

    return [engine.make_prompt(audio.load(entry["path"]), entry["text"], mode)
            for entry in ja_clips[:2] for mode in ("icl", "xvector")]


def job(number, prompts, frames=12, sampling=None, seeds=None):
    sampling = sampling or Sampling(temperature=0)
    return SpeakJob(TEXTS[number], "English", prompts[number % len(prompts)], sampling,
                    seeds or (number,), frames * FRAME)


def collect(pieces, takes=1):
    """Samples per take and cut flags per take, from an iterator of pieces."""
    audio, cut = [[] for _ in range(takes)], [False] * takes
    for piece in pieces:
        audio[piece.take].append(piece.samples)
        cut[piece.take] = cut[piece.take] or piece.cut
    return [np.concatenate(a) for a in audio], cut


def alone(engine, request, takes=1):
    return collect(engine.speak(request), takes)[0]


@pytest.mark.parametrize("sampling", [Sampling(temperature=0), Sampling(seed=7)], ids=["greedy", "sampled"])
def test_a_request_that_joins_mid_stream_speaks_as_it_does_alone(engine, prompts, sampling):
    early = job(1, prompts, frames=30, sampling=sampling)
    late = job(0, prompts, frames=10, sampling=sampling)
    expected_early, expected_late = alone(engine, early)[0], alone(engine, late)[0]
    with row_trace(engine) as rows:
        first = engine.speak(early)
        head = [next(first) for _ in range(4)]  # the early request is well under way
        joined = alone(engine, late)[0]  # joins at the next frame, leaves after its 10 frames
        rest = list(first)
    assert 2 in rows and rows[0] == 1 and rows[-1] == 1  # alone, then together, then alone again
    np.testing.assert_array_equal(joined, expected_late)
    np.testing.assert_array_equal(np.concatenate([p.samples for p in head + rest]), expected_early)


def test_stopping_one_of_four_leaves_the_others_exact(engine, prompts):
    jobs = [job(n, prompts, frames=14) for n in range(4)]
    expected = [alone(engine, j)[0] for j in jobs]
    streams = [engine.speak(j) for j in jobs]
    heard = [[next(s)] for s in streams]  # all four are in the batch
    for _ in range(3):
        heard[2].append(next(streams[2]))
    streams[2].close()  # the third stops; the others go on
    for number in (0, 1, 3):
        heard[number] += list(streams[number])
        np.testing.assert_array_equal(np.concatenate([p.samples for p in heard[number]]), expected[number])
    assert sum(len(p.samples) for p in heard[2]) < len(expected[2])
    assert not engine.busy


def test_budgets_and_takes_are_each_requests_own(engine, prompts):
    short = job(0, prompts, frames=3)
    long = job(1, prompts, frames=9, sampling=Sampling(seed=3), seeds=(3, 4))
    a, b = engine.speak(long), engine.speak(short)
    (long_audio, long_cut), (short_audio, short_cut) = collect(a, 2), collect(b)
    assert [len(x) for x in long_audio] == [9 * SAMPLES_PER_FRAME] * 2 and long_cut == [True, True]
    assert len(short_audio[0]) == 3 * SAMPLES_PER_FRAME and short_cut == [True]
    assert not np.array_equal(long_audio[0], long_audio[1])  # two takes, two seeds
    for got, expected in zip(long_audio, alone(engine, long, 2)):
        np.testing.assert_array_equal(got, expected)


def test_the_batch_keeps_to_max_batch_and_the_line_moves_in_order(settings, prompts, engine):
    small = create_engine(settings.replace(max_batch=2))
    small.load()
    small_prompts = [small.check_prompt(engine.prompt_bytes(p), p.mode, p.ref_text) for p in prompts]
    jobs = [job(n, small_prompts, frames=6) for n in range(3)]
    expected = [alone(small, j)[0] for j in jobs]
    with row_trace(small) as rows:
        streams = [small.speak(j) for j in jobs]
        firsts = [next(streams[0]), next(streams[1])]
        assert small.batcher.counts() == (2, 0)
        third = next(streams[2])  # waits for a row, then joins
        got = [np.concatenate([first.samples] + [p.samples for p in s])
               for first, s in zip(firsts + [third], streams)]
    assert max(rows) == 2 and sum(rows) == 3 * 6
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


def test_the_status_line_counts_requests_in_the_batch(engine, prompts):
    pieces = engine.speak(job(0, prompts, frames=20))
    next(pieces)
    assert "Generating 1 request in one batch; 0 waiting." in engine.status()
    pieces.close()
    assert "Generating" not in engine.status()


def test_eight_websocket_sessions_at_once_are_exact_and_complete(live_server, studio, ja_clips):
    """Eight apps speaking at once through /api/v1/speak: each gets exactly what it gets alone."""
    import websockets

    voices = [studio.save_voice(NewVoice(f"Batch Voice {n}", ja_clips[n % 2]["path"], ja_clips[n % 2]["text"],
                                         mode="icl" if n % 3 else "xvector")).name for n in range(2)]
    frames = 8

    async def session(number):
        async with websockets.connect(ws_url(live_server)) as socket:
            await socket.send(json.dumps({"type": "start", "voice": voices[number % 2], "max_frames": frames,
                                          "seed": number, "temperature": 0.8, "encoding": "f32", "binary": True}))
            assert json.loads(await socket.recv())["type"] == "ready"
            await socket.send(json.dumps({"type": "speak", "text": TEXTS[number]}))
            audio = b""
            while True:
                message = await socket.recv()
                if isinstance(message, bytes):
                    audio += message
                elif json.loads(message)["type"] == "complete":
                    return np.frombuffer(audio, np.float32)

    async def everyone():
        import asyncio

        return await asyncio.gather(*(session(n) for n in range(8)))

    with row_trace(studio.engine) as rows:
        results = run_async(everyone())
    assert max(rows) > 1  # they shared the batch
    for number, audio in enumerate(results):
        request = SpeakRequest(TEXTS[number], "English", voice=voices[number % 2],
                               sampling=Sampling(seed=number, temperature=0.8, max_seconds=frames * FRAME))
        take = studio.synthesize(request)
        assert len(audio) == frames * SAMPLES_PER_FRAME
        np.testing.assert_array_equal(audio, take.samples)


def test_compare_columns_and_their_takes_share_the_batch(studio, ja_clips):
    """Two columns of two takes: four rows in one batch, and the events still come column by column."""
    from studio.studio import Column, CompareRequest

    entry = ja_clips[2]
    studio.save_voice(NewVoice("Compare Batch", entry["path"], entry["text"]))
    request = CompareRequest("Side by side.", "English", (Column(voice="Compare Batch"),
                                                          Column(voice="Compare Batch", mode="xvector")),
                             seed=5, takes=2, sampling=Sampling(max_seconds=6 * FRAME))
    with row_trace(studio.engine) as rows:
        events = list(studio.compare_events(request))
    assert max(rows) == 4
    order = [(e[1], e[2]) for e in events if e[0] == "chunk"]
    assert order == sorted(order) and {key for key in order} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    scored = [(e[1], e[2].take.seed) for e in events if e[0] == "scored"]
    assert scored == [(0, 5), (0, 6), (1, 5), (1, 6)]
    (done,) = [e[1] for e in events if e[0] == "done"]
    assert all(len(t.take.samples) == 6 * SAMPLES_PER_FRAME for column in done for t in column.takes)


def test_the_page_status_line_shows_what_the_batch_is_doing(browser, live_server, studio, ja_clips):
    """An open page sees the status line change while an app speaks through the WebSocket, and change back."""
    import threading

    import websockets

    entry = ja_clips[0]
    studio.set_default_voice(studio.save_voice(NewVoice("Status Voice", entry["path"], entry["text"])).name)

    page = browser.new_page()
    page.goto(live_server)
    page.wait_for_selector("#status")
    done = threading.Event()

    async def app():
        async with websockets.connect(ws_url(live_server)) as socket:
            await socket.send(json.dumps({"type": "start", "max_frames": 400, "seed": 1}))
            await socket.recv()
            await socket.send(json.dumps({"type": "speak", "text": "A long line for the status test."}))
            while not done.is_set():
                message = await socket.recv()
                assert isinstance(message, bytes) or json.loads(message)["type"] == "audio_chunk", message

    talking = threading.Thread(target=run_async, args=(app(),), daemon=True)
    talking.start()
    try:
        page.wait_for_function("document.querySelector('#status').innerText.includes('Generating 1 request')",
                                   timeout=30000)
    finally:
        done.set()
        talking.join(60)
    page.wait_for_function("!document.querySelector('#status').innerText.includes('Generating')", timeout=30000)
    page.close()
