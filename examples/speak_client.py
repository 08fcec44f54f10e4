"""Speak lines through a running Voice Studio and save them as WAV files, as an app would.

    python examples/speak_client.py "Hello, how can I help?" "Second line." --voice "Aiko (sample)" --out replies

Each line becomes replies/01.wav, replies/02.wav, ... Audio arrives over the /api/v1/speak WebSocket while the
model is still generating; every chunk is appended to the open file at once (so a player could start now).
Needs `pip install websockets soundfile numpy`. Add --api-key when the studio was started with one.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import websockets


async def speak(url: str, lines: list[str], voice: str | None, language: str, rate: int, out: Path,
                api_key: str | None) -> None:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with websockets.connect(url, additional_headers=headers, max_size=None) as socket:
        start = {"type": "start", "sample_rate": rate, "encoding": "pcm16", "language": language}
        if voice:
            start["voice"] = voice
        await socket.send(json.dumps(start))
        reply = json.loads(await socket.recv())
        if reply["type"] != "ready":
            raise SystemExit(f"the studio refused: {reply.get('message')}")
        for line in lines:
            await socket.send(json.dumps({"type": "speak", "text": line}))
        out.mkdir(parents=True, exist_ok=True)
        files = {n: sf.SoundFile(out / f"{n:02d}.wav", "w", samplerate=rate, channels=1, subtype="PCM_16")
                 for n in range(1, len(lines) + 1)}
        finished = 0
        while finished < len(lines):
            message = json.loads(await socket.recv())
            if message["type"] == "audio_chunk":
                pcm = np.frombuffer(base64.b64decode(message["data"]), "<i2")
                files[message["utterance"]].write(pcm)
            elif message["type"] == "complete":
                number = message["utterance"]
                files[number].close()
                finished += 1
                print(f"{out / f'{number:02d}.wav'}: {message['duration']:.2f} s, seed {message['seed']}")
            elif message["type"] == "error":
                print(f"error: {message['message']}")
                if "utterance" in message:
                    files[message["utterance"]].close()
                    finished += 1
        await socket.send(json.dumps({"type": "stop"}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lines", nargs="+", help="text to speak, one utterance each")
    parser.add_argument("--url", default="ws://127.0.0.1:7860/api/v1/speak")
    parser.add_argument("--voice", default=None, help="library voice (default: the library's default voice)")
    parser.add_argument("--language", default="English")
    parser.add_argument("--rate", type=int, default=24000, help="sample rate, 8000-48000")
    parser.add_argument("--out", type=Path, default=Path("replies"))
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args()
    asyncio.run(speak(args.url, args.lines, args.voice, args.language, args.rate, args.out, args.api_key))


if __name__ == "__main__":
    main()
