"""Hostile clients against a live studio: connections, message types, bodies, the queue, logins, closed routes.

Each server here runs with small bounds (a few connections per address, one-second
timeouts) so the behaviour shows without thousands of sockets; benchmarks/soak.py
runs the full figures.
"""

import asyncio
import json
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import websockets

from studio.studio import NewVoice, Studio
from tests.conftest import free_port, wait_until_idle
from tests.test_speech_api import receive, run_async, start

PER_CLIENT = 8


@pytest.fixture(scope="module")
def voice(studio, ja_clips):
    saved = studio.save_voice(NewVoice("Door Voice", ja_clips[0]["path"], ja_clips[0]["text"]))
    studio.set_default_voice(saved.name)
    return saved.name


def launch_with(studio, **changes):
    from app import launch

    port = free_port()
    settings = studio.settings.replace(port=port, **changes)
    demo = launch(Studio(settings, studio.engine, studio.library, studio.transcriber), block=False, quiet=True)
    return demo, f"http://127.0.0.1:{port}/", port


@pytest.fixture(scope="module")
def strict_server(studio, voice):
    """Few connections per address, short timeouts, a small speech queue."""
    demo, url, port = launch_with(studio, max_client_connections=PER_CLIENT, max_connections=64,
                                  header_timeout=1.0, body_timeout=1.0, idle_timeout=2.0, concurrency=1,
                                  queue_size=1, stall_seconds=1.0)
    yield url, port, demo
    demo.close()


def connect(port, source="127.0.0.1"):
    sock = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    return sock


def closed_by_server(sock, seconds=30.0) -> bool:
    """Whether the server closes the socket within `seconds` (a generous bound, not a timing assertion)."""
    sock.settimeout(seconds)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (socket.timeout, TimeoutError):
        return False
    except ConnectionResetError:
        return True


def wait_for(condition, seconds=30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# -- 1: idle and slow connections ------------------------------------------------------------------

def test_idle_connections_from_one_address_cannot_lock_out_another(strict_server, caplog):
    url, port, demo = strict_server
    guard = demo.connection_guard
    held = []
    caplog.set_level(logging.WARNING, logger="studio.connections")
    try:
        for _ in range(PER_CLIENT):
            held.append(connect(port))
        assert wait_for(lambda: guard.held_by("127.0.0.1") >= PER_CLIENT)
        refused = []
        for _ in range(3 * PER_CLIENT):  # one burst of extra connections from the same address
            sock = connect(port)
            sock.settimeout(30)
            refused.append(sock.recv(200))
            sock.close()
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=30) as other:
            answer = other.get(url.replace("127.0.0.1", "127.0.0.1") + "v1/models")
    finally:
        for sock in held:
            sock.close()
    assert all(reply.startswith(b"HTTP/1.1 503") for reply in refused)
    assert answer.status_code == 200 and answer.json()["data"]
    lines = [r for r in caplog.records if "refusing new connections" in r.getMessage()]
    assert len(lines) == 1 and not any(r.exc_info for r in caplog.records)
    assert wait_for(lambda: guard.held_by("127.0.0.1") == 0)


def test_silent_and_half_sent_requests_are_closed(strict_server):
    _, port, _ = strict_server
    silent = connect(port)
    half = connect(port)
    half.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n")  # the blank line never comes
    try:
        assert closed_by_server(silent) and closed_by_server(half)
    finally:
        silent.close()
        half.close()


def test_a_trickling_body_is_closed(strict_server):
    _, port, _ = strict_server
    sock = connect(port)
    sock.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 5000\r\n\r\n")
    closed = False
    try:
        for _ in range(60):  # a byte every half second: 2 bytes/s, far below the minimum rate
            try:
                sock.sendall(b" ")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sock.settimeout(0.5)
            try:
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except (socket.timeout, TimeoutError):
                pass
    finally:
        sock.close()
    assert closed


def test_a_websocket_that_never_starts_is_closed_with_a_message(strict_server):
    url, _, _ = strict_server

    async def scenario():
        async with websockets.connect(url.replace("http://", "ws://") + "api/v1/speak") as sock:
            reply = await receive(sock)
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await asyncio.wait_for(sock.recv(), 30)
            return reply, sock.close_code

    reply, code = run_async(scenario())
    assert reply["type"] == "error" and "no start message" in reply["message"] and code == 1008


def test_a_websocket_with_nothing_more_to_say_is_closed_after_the_idle_timeout(strict_server, voice):
    url, _, _ = strict_server

    async def scenario():
        async with websockets.connect(url.replace("http://", "ws://") + "api/v1/speak") as sock:
            await start(sock, max_frames=4)
            await sock.send(json.dumps({"type": "speak", "text": "One line, then silence."}))
            while (await receive(sock)).get("type") != "complete":
                pass
            reply = await receive(sock)  # the idle clock starts once the utterance is complete
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await asyncio.wait_for(sock.recv(), 30)
            return reply, sock.close_code

    reply, code = run_async(scenario())
    assert reply["type"] == "error" and "nothing to say for 2 s" in reply["message"] and code == 1008


# -- 2: wrong JSON types are answered, never a dropped connection ----------------------------------

@pytest.mark.parametrize("raw, field", [
    ('{"type": "start", "language": 5}', "language"),
    ('{"type": "start", "language": true}', "language"),
    ('{"type": "start", "language": ["en"]}', "language"),
    ('{"type": "start", "engine": ["qwen"]}', "engine"),
    ('{"type": "start", "max_frames": 1e400}', "max_frames"),
    ('{"type": "start", "seed": NaN}', "seed"),
    ('{"type": "start", "top_k": -Infinity}', "top_k"),
    ('{"type": "start", "voice": {"name": "x"}}', "voice"),
    ('{"type": "start", "sample_rate": 16000.5}', "sample_rate"),
    ('{"type": "speak", "text": ["hello"]}', "text"),
])
def test_wrong_types_on_the_websocket_are_answered_with_the_field(live_server, voice, raw, field):
    async def scenario():
        async with websockets.connect(live_server.replace("http://", "ws://") + "api/v1/speak") as sock:
            await sock.send(raw)
            reply = await receive(sock)
            ready = await start(sock)  # the session survives
            return reply, ready

    reply, ready = run_async(scenario())
    assert reply["type"] == "error" and reply["message"].startswith(f"{field} must be"), reply
    assert ready["type"] == "ready"


@pytest.mark.parametrize("body, field", [
    ({"input": "Hi", "response_format": ["mp3"]}, "response_format"),
    ({"input": "Hi", "language": 5}, "language"),
    ({"input": ["Hi"]}, "input"),
    ({"input": "Hi", "voice": 7}, "voice"),
    ({"input": "Hi", "model": {"id": "qwen"}}, "model"),
    ({"input": "Hi", "speed": True}, "speed"),
    ({"input": "Hi", "max_frames": 1e400}, "max_frames"),
    ({"input": "Hi", "seed": float("nan")}, "seed"),
    ({"input": "Hi", "temperature": "hot"}, "temperature"),
])
def test_wrong_types_on_the_openai_route_are_400_with_the_field(live_server, voice, body, field):
    response = httpx.post(live_server + "v1/audio/speech", content=json.dumps(body), timeout=60,
                          headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == field and error["message"].startswith(f"'{field}' must be")


# -- 3: bodies ---------------------------------------------------------------------------------------

def test_a_large_declared_body_is_refused_unread(live_server, voice):
    port = int(live_server.rsplit(":", 1)[1].strip("/"))
    sock = connect(port)
    try:
        sock.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100000000\r\n\r\n")
        sock.settimeout(30)
        reply = sock.recv(4096)
    finally:
        sock.close()
    assert reply.startswith(b"HTTP/1.1 413")


def test_a_chunked_body_is_cut_off_at_the_limit(live_server, voice):
    """The server stops reading a chunked body past its limit: the client cannot push 50 MB into it."""
    port = int(live_server.rsplit(":", 1)[1].strip("/"))
    sock = connect(port)
    sent, chunk = 0, b"x" * 65536
    reply = b""
    try:
        sock.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        sock.settimeout(5)
        try:
            while sent < 50_000_000:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError, socket.timeout, TimeoutError):
            pass
        sock.settimeout(30)
        try:
            reply = sock.recv(4096)
        except (ConnectionResetError, socket.timeout, TimeoutError):
            pass
    finally:
        sock.close()
    assert sent < 20_000_000
    assert reply == b"" or reply.startswith(b"HTTP/1.1 413")


def test_a_client_that_leaves_mid_upload_is_one_log_line(live_server, voice, caplog):
    port = int(live_server.rsplit(":", 1)[1].strip("/"))
    caplog.set_level(logging.INFO)
    sock = connect(port)
    sock.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 60000\r\n\r\n" + b" " * 1000)
    time.sleep(0.5)
    sock.close()
    assert wait_for(lambda: any("disconnected while sending" in r.getMessage() for r in caplog.records))
    time.sleep(0.5)
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    mentions = [r for r in caplog.records if "disconnected while sending" in r.getMessage()]
    assert len(mentions) == 1 and not noisy, [r.getMessage() for r in noisy]


# -- 5: a client that stops reading -----------------------------------------------------------------

def test_the_stall_clock_starts_when_the_reader_stops_taking_chunks(studio, voice, engine):
    """Slow frames (a real frame loop, delayed) never fill the 64-chunk buffer: the reader's stall still ends it."""
    from studio.server import ChunkPump
    from studio.studio import SpeakRequest
    from studio.engines import Sampling

    talker = engine.talker
    original = talker.predict
    frames = []

    def slow_predict(*args, **kwargs):
        frames.append(1)
        time.sleep(0.1)
        return original(*args, **kwargs)

    talker.predict = slow_predict
    try:
        request = SpeakRequest("A long line nobody listens to.", "English", voice=voice,
                               sampling=Sampling(seed=1, max_seconds=2000 / 12.5))
        pump = ChunkPump(lambda: studio.stream(request), stall_seconds=1.0)
        assert run_async(pump.next()) is not None  # the reader takes one chunk, then stops
        assert wait_until_idle(engine, 120)
        assert wait_for(lambda: pump.cancelled, 60)
    finally:
        del talker.predict
    assert len(frames) < 64  # stopped long before the buffer could fill


# -- 6: the speech routes are bounded by --queue-size -----------------------------------------------

def test_speech_routes_past_the_queue_size_are_refused(strict_server, voice, studio):
    url, _, _ = strict_server
    body = {"input": "Busy busy.", "response_format": "pcm", "max_frames": 400, "seed": 1}

    async def scenario():
        async with httpx.AsyncClient(timeout=120) as client:
            holders = [client.stream("POST", url + "v1/audio/speech", json=body) for _ in range(2)]
            # speaking, and waiting for the engine (its answer starts with its first audio): capacity 2
            opening = [asyncio.create_task(holder.__aenter__()) for holder in holders]
            while not studio.engine.busy:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # the second request is admitted at once; it then waits for the engine
            refused = await client.post(url + "v1/audio/speech", json=body)
            cheap = await client.get(url + "v1/models")
            async with websockets.connect(url.replace("http://", "ws://") + "api/v1/speak") as sock:
                await start(sock)
                await sock.send(json.dumps({"type": "speak", "text": "Me too."}))
                ws_reply = await receive(sock)
            opened = [await task for task in opening]
            for holder in holders:
                await holder.__aexit__(None, None, None)
            return [o.status_code for o in opened], refused, cheap, ws_reply

    statuses, refused, cheap, ws_reply = run_async(scenario())
    assert statuses == [200, 200]
    assert refused.status_code == 429 and "busy" in refused.json()["error"]["message"]
    assert cheap.status_code == 200
    assert ws_reply["type"] == "error" and "busy" in ws_reply["message"] and ws_reply["utterance"] == 1
    assert wait_until_idle(studio.engine, 60)


# -- 7 and 8: logins --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def auth_server(studio, voice):
    demo, url, port = launch_with(studio, auth=("ann", "right-password"))
    yield url
    demo.close()


def test_repeated_failed_logins_are_slowed_down_per_client(auth_server):
    from studio.gate import FREE_FAILURES

    with httpx.Client(timeout=30) as client:
        answers = [client.post(auth_server + "login", data={"username": "ann", "password": f"guess {i}"})
                   for i in range(FREE_FAILURES + 3)]
        right_now = client.post(auth_server + "login", data={"username": "ann", "password": "right-password"})
    codes = [a.status_code for a in answers]
    assert codes[:FREE_FAILURES] == [400] * FREE_FAILURES and 429 in codes[FREE_FAILURES:]
    assert right_now.status_code == 429 and "try again in" in right_now.json()["detail"]
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.3"), timeout=30) as other:
        elsewhere = other.post(auth_server + "login", data={"username": "ann", "password": "right-password"})
    assert elsewhere.status_code == 200  # another address is not throttled


@pytest.mark.parametrize("method, path, body", [
    ("GET", "monitoring/summary", None),
    ("POST", "gradio_api/cancel", {"session_hash": "x", "fn_index": 0, "event_id": "y"}),
    ("GET", "gradio_api/heartbeat/abc", None),
])
def test_gradio_routes_need_a_login_under_auth(auth_server, method, path, body):
    def status(client) -> int:  # the heartbeat is an endless event stream: only its status is read
        with client.stream(method, auth_server + path, json=body) as response:
            return response.status_code

    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.4"), timeout=30) as client:
        assert status(client) == 401
        login = client.post(auth_server + "login", data={"username": "ann", "password": "right-password"})
        assert login.status_code == 200
        assert status(client) not in (401, 403, 404)


def test_the_total_bound_fits_under_the_open_file_limit():
    """With a hard limit of 300 open files, 512 connections cannot fit: the bound is lowered, with a warning."""
    code = ("import resource\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 300))\n"
            "from studio.connections import FILES_RESERVED, connection_budget\n"
            "print(connection_budget(512), connection_budget(100), resource.getrlimit(resource.RLIMIT_NOFILE)[0],"
            " FILES_RESERVED)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parent.parent)
    fitted, small, soft, reserved = map(int, result.stdout.split())
    assert soft == 300 and fitted == 300 - reserved and small == 100  # raised to the hard limit, then fitted
    assert "open-file limit is 300" in result.stderr
