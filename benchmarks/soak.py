"""A hostile-client soak against a live studio: what it withstands, as figures.

    python benchmarks/soak.py [--connections 1030] [--speech 200] [--logins 200] [--body-mb 100]

Starts `app.py` in a child process (tiny random model, --auth, --api-key, --queue-size 4) under an open-file
limit of 1024, as in the probe that found these problems, then:

1. opens --connections idle TCP connections from 127.0.0.1 and, while they are open, asks for /v1/models
   from 127.0.0.2: how many were held, how many refused, how long the other address waited, how many were
   closed by the idle timeout, and how many log lines the burst cost;
2. half-sent headers, a body trickling a byte every 2 s, a WebSocket that never sends start: when each is closed;
3. five POSTs of --body-mb MB (declared, and chunked) to /v1/audio/speech: statuses and the studio's memory;
4. --speech concurrent speech requests: accepted, refused (429), threads and memory, and a cheap route's time;
5. --logins wrong passwords in a row: how many were answered 400 and how many 429, and how long they took.

Figures depend on the machine and its load; compare runs on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import FIXTURE, FIXTURE_TEXT, ROOT

KEY = "soak-key"
USER, PASSWORD = "ann", "soak-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_status(pid: int) -> dict:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        values[key] = value.strip()
    return {"rss_mb": int(values["VmRSS"].split()[0]) / 1024, "peak_mb": int(values["VmHWM"].split()[0]) / 1024,
            "threads": int(values["Threads"])}


def limit_files():
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def start_studio(workdir: Path, port: int) -> tuple[subprocess.Popen, Path]:
    from studio import audio
    from studio.library import Library
    from studio.engines.qwen.standin import build_checkpoint

    checkpoint = build_checkpoint(workdir / "tiny")
    voices = workdir / "voices"
    library = Library(voices)
    library.save("Soak", audio.load(FIXTURE), FIXTURE_TEXT, "Japanese", "icl")
    library.set_default("Soak")
    log = workdir / "studio.log"
    command = [sys.executable, str(ROOT / "app.py"), "--model", str(checkpoint), "--voices-dir", str(voices),
               "--device", "cpu", "--dtype", "float32", "--port", str(port), "--queue-size", "4",
               "--auth", f"{USER}:{PASSWORD}", "--api-key", KEY]
    process = subprocess.Popen(command, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT,
                               preexec_fn=limit_files, env=dict(os.environ, GRADIO_ANALYTICS_ENABLED="False"))
    import httpx

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": f"Bearer {KEY}"},
                         timeout=5).status_code == 200:
                return process, log
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise SystemExit(f"the studio exited:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    raise SystemExit("the studio did not start within 300 s")


def log_lines(log: Path) -> int:
    return len(log.read_text(errors="replace").splitlines())


def idle_flood(port: int, count: int, log: Path, pid: int) -> None:
    import httpx

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 256)), hard))
    before_lines, before = log_lines(log), proc_status(pid)
    sockets, held = [], []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sockets.append(sock)
    time.sleep(1.0)
    for sock in sockets:
        sock.setblocking(False)
        try:
            sock.recv(4096)  # the 503 of a refused connection
        except BlockingIOError:
            held.append(sock)  # nothing to read: the studio holds it open
        except ConnectionResetError:
            pass
    refused = count - len(held)
    started = time.perf_counter()
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=30) as other:
        answer = other.get(f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    other_seconds = time.perf_counter() - started
    during = proc_status(pid)
    time.sleep(12.0)  # past the header timeout
    closed = 0
    for sock in held:
        try:
            closed += sock.recv(64) == b""
        except BlockingIOError:
            pass
        except ConnectionResetError:
            closed += 1
    for sock in sockets:
        sock.close()
    print(f"\n== 1. {count} idle connections from 127.0.0.1 (studio under a 1024 open-file limit)")
    print(f"refused at once                       {refused}")
    print(f"held                                  {count - refused}")
    print(f"127.0.0.2 asked /v1/models            {answer.status_code} in {other_seconds:.3f} s")
    print(f"held ones closed by the header timeout {closed} of {len(held)} (after 13 s)")
    print(f"log lines for the whole burst         {log_lines(log) - before_lines}")
    print(f"studio memory                         {before['rss_mb']:.0f} MB -> {during['rss_mb']:.0f} MB")


def slow_clients(port: int) -> None:
    import websockets

    def watch(sock, feed=None, seconds=60.0) -> float | None:
        started = time.monotonic()
        sock.settimeout(0.5)
        while time.monotonic() - started < seconds:
            if feed:
                try:
                    feed(sock)
                except OSError:
                    return time.monotonic() - started
            try:
                data = sock.recv(4096)
                if not data or data.startswith(b"HTTP/1.1 4") or data.startswith(b"HTTP/1.1 5"):
                    return time.monotonic() - started
            except (socket.timeout, TimeoutError):
                pass
            except OSError:
                return time.monotonic() - started
        return None

    half = socket.create_connection(("127.0.0.1", port))
    half.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n")
    half_closed = watch(half)
    trickle = socket.create_connection(("127.0.0.1", port))
    trickle.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n"
                    b"Authorization: Bearer " + KEY.encode() + b"\r\n\r\n")
    last = [0.0]

    def drip(sock):
        if time.monotonic() - last[0] >= 2.0:
            sock.sendall(b" ")
            last[0] = time.monotonic()

    trickle_closed = watch(trickle, drip, 90.0)

    async def no_start() -> float | None:
        started = time.monotonic()
        async with websockets.connect(f"ws://127.0.0.1:{port}/api/v1/speak",
                                      additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 60)
            except websockets.exceptions.ConnectionClosed:
                return time.monotonic() - started
            except asyncio.TimeoutError:
                return None

    ws_closed = asyncio.run(no_start())
    show = lambda value: "still open" if value is None else f"closed after {value:.1f} s"  # noqa: E731
    print("\n== 2. slow clients")
    print(f"half-sent headers                     {show(half_closed)}")
    print(f"body trickling a byte every 2 s       {show(trickle_closed)}")
    print(f"WebSocket that never sends start      {show(ws_closed)}")


def big_bodies(port: int, pid: int, megabytes: int) -> None:
    before = proc_status(pid)
    statuses = []
    for declared in (True, True, True, False, False):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        size = megabytes * 1_000_000
        head = (b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Authorization: Bearer " + KEY.encode() + b"\r\n")
        head += b"Content-Length: %d\r\n\r\n" % size if declared else b"Transfer-Encoding: chunked\r\n\r\n"
        sent, chunk = 0, b" " * 65536
        try:
            sock.sendall(head)
            sock.settimeout(5)
            while sent < size:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if not declared else chunk)
                sent += len(chunk)
        except OSError:
            pass
        try:
            sock.settimeout(10)
            reply = sock.recv(64)
        except OSError:
            reply = b""
        statuses.append(f"{reply[9:12].decode() or 'closed'} after {sent / 1e6:.1f} MB sent")
        sock.close()
    after = proc_status(pid)
    print(f"\n== 3. five {megabytes} MB bodies to /v1/audio/speech (3 with Content-Length, 2 chunked)")
    for status in statuses:
        print(f"answer                                {status}")
    print(f"studio memory                         {before['rss_mb']:.0f} MB -> {after['rss_mb']:.0f} MB "
          f"(+{after['rss_mb'] - before['rss_mb']:.1f} MB)")


def speech_flood(port: int, pid: int, count: int) -> None:
    import httpx

    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {KEY}"}

    other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), headers=headers, timeout=60)

    def cheap_time() -> float:
        """A cheap route, asked from another address (the flood's own address is at its connection bound)."""
        started = time.perf_counter()
        other.get(url + "/v1/models")
        return time.perf_counter() - started

    quiet = min(cheap_time() for _ in range(5))
    before = proc_status(pid)

    async def flood():
        body = {"input": "A soak test sentence.", "response_format": "pcm", "max_frames": 60, "seed": 1}
        limits = httpx.Limits(max_connections=count + 10)
        async with httpx.AsyncClient(timeout=600, limits=limits, headers=headers) as client:
            async def one():
                try:
                    response = await client.post(url + "/v1/audio/speech", json=body)
                except httpx.HTTPError:
                    return "connection refused"  # past --max-client-connections: a 503 and a close
                return response.status_code

            tasks = [asyncio.create_task(one()) for _ in range(count)]
            await asyncio.sleep(1.0)
            busy = proc_status(pid)
            cheap = await asyncio.to_thread(lambda: sorted(cheap_time() for _ in range(5))[2])
            return await asyncio.gather(*tasks), busy, cheap

    statuses, busy, cheap = asyncio.run(flood())
    print(f"\n== 4. {count} concurrent speech requests (--queue-size 4, --concurrency 1)")
    print(f"accepted (200)                        {statuses.count(200)}")
    print(f"refused (429)                         {statuses.count(429)}")
    print(f"refused as connections (503, closed)  {statuses.count(503) + statuses.count('connection refused')}")
    print(f"other                                 {len(statuses) - statuses.count(200) - statuses.count(429) - statuses.count(503) - statuses.count('connection refused')}")
    print(f"studio threads                        {before['threads']} -> {busy['threads']} during the flood")
    print(f"studio memory                         {before['rss_mb']:.0f} MB -> {busy['rss_mb']:.0f} MB")
    print(f"/v1/models from 127.0.0.2             {quiet:.3f} s quiet, {cheap:.3f} s during the flood (median of 5)")


def login_flood(port: int, count: int) -> None:
    import httpx

    codes = []
    started = time.perf_counter()
    with httpx.Client(timeout=30) as client:
        for i in range(count):
            codes.append(client.post(f"http://127.0.0.1:{port}/login",
                                     data={"username": USER, "password": f"wrong {i}"}).status_code)
    elapsed = time.perf_counter() - started
    print(f"\n== 5. {count} wrong passwords in a row from one address")
    print(f"checked (400)                         {codes.count(400)}")
    print(f"refused without a check (429)         {codes.count(429)}")
    print(f"took                                  {elapsed:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=1030)
    parser.add_argument("--speech", type=int, default=200)
    parser.add_argument("--logins", type=int, default=200)
    parser.add_argument("--body-mb", type=int, default=100)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="studio-soak-"))
    port = free_port()
    process, log = start_studio(workdir, port)
    try:
        print(f"studio pid {process.pid} on port {port}")
        idle_flood(port, args.connections, log, process.pid)
        slow_clients(port)
        big_bodies(port, process.pid, args.body_mb)
        speech_flood(port, process.pid, args.speech)
        login_flood(port, args.logins)
        text = log.read_text(errors="replace")
        print("\n== the studio's log")
        print(f"lines                                 {len(text.splitlines())}")
        print(f"tracebacks                            {text.count('Traceback')}")
    finally:
        process.terminate()
        process.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
