"""The remote engine: each sentence is one request to a speech server, its PCM streamed back.

The server is vLLM-Omni serving a Qwen3-TTS Base model, or another Voice Studio (whose
`/v1/audio/speech` takes the same fields). The request follows vLLM-Omni's documented
speech API (docs/serving/speech_api.md and examples/online_serving/qwen3_tts in
github.com/vllm-project/vllm-omni): `task_type: "Base"`, `language`, `ref_audio` as a
base64 data URL with `ref_text` (or `x_vector_only_mode`), `max_new_tokens`, and
`stream: true` with `response_format: "pcm"` (16-bit little-endian mono).

A voice prompt is the reference clip itself (24 kHz 16-bit) with its transcript: the
server encodes it. A server that says it keeps uploaded voices (`voice_upload` in its
model card: another studio) is sent each voice once, at `POST /v1/audio/voices`, and then
asked for it by name; others get the clip with every request. Takes are sequential
requests, one per seed. What the server
cannot do is not faked: a server that does not say it honours seeds (vLLM-Omni's
speech API has no seed field) gets none, and the engine's note says takes cannot be
repeated. Closing `speak` closes the HTTP response, which a studio server notices as a
disconnect and stops generating.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import threading
from contextlib import closing
from typing import Iterator

import numpy as np

from ... import audio
from ...config import FRAME_RATE, SAMPLE_RATE, Settings
from ...errors import InvalidInput, ModelUnavailable, StudioError
from ...languages import LANGUAGES
from ..base import MODES, Capabilities, Engine, Piece, SpeakJob, VoicePrompt, first_line

log = logging.getLogger(__name__)

PROMPT_RATE = SAMPLE_RATE  # the reference is sent as 24 kHz 16-bit WAV
MIN_PROMPT_SECONDS = 0.5
# What a server that describes nothing (vLLM-Omni with Qwen3-TTS Base) is taken to do.
STATED = Capabilities(languages=LANGUAGES, modes=MODES, sample_rate=SAMPLE_RATE, step_seconds=1 / FRAME_RATE,
                      takes_at_once=1, seeds=False)
CONNECT_SECONDS = 10.0
ERROR_BYTES = 4096  # of an error response, read for its message
CONSENT = "Voice Studio remote engine: a library voice's reference; its consent is recorded where it was cloned."


class Server:
    """Where the remote engine runs, as a local engine's `Runtime` says where it runs."""

    def __init__(self, url: str):
        self.url = url

    def describe(self) -> str:
        return f"the server at {self.url}"


class RemoteError(ModelUnavailable):
    """The remote server failed: unreachable, too slow, an error, or a stream that broke off."""


class RemoteEngine(Engine):
    name = "remote"
    label = "Remote server"
    capabilities = STATED

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.url = settings.remote_url
        self._open = 0  # responses being read now
        self._open_lock = threading.Lock()
        self._client = None
        self._client_lock = threading.Lock()
        self._uploaded: set[str] = set()  # names of voices the server holds
        self._upload_lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return self.url or "(no --remote-url)"

    @property
    def served_model(self) -> str:
        self.load()
        return self._state[0]

    @property
    def busy(self) -> bool:
        return self._open > 0

    def status(self) -> str:
        if self._state is not None:
            seeds = "" if self.capabilities.seeds else " It ignores seeds: takes cannot be repeated."
            return f"{self.label} {self.model_name} serves {self._state[0]}.{seeds}"
        if self.load_error:
            return self.load_error
        return f"{self.label} {self.model_name} loads on first use (it is asked what it serves)."

    # -- the server ----------------------------------------------------------------------------
    def client(self):
        """One connection pool for every request thread (httpx's Client is thread-safe)."""
        with self._client_lock:
            if self._client is None:
                self._client = self._new_client()
        return self._client

    def _new_client(self):
        import httpx

        headers = {"Authorization": f"Bearer {self.settings.remote_key}"} if self.settings.remote_key else {}
        seconds = self.settings.remote_timeout
        timeout = httpx.Timeout(seconds, connect=min(CONNECT_SECONDS, seconds))
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def _load(self) -> tuple:
        """Ask the server what it serves (GET /v1/models); its capabilities where it states them."""
        if not self.url:
            raise ModelUnavailable("The remote engine needs a server: start the studio with --remote-url "
                                   "(a vLLM-Omni server or another studio, e.g. http://gpu-box:8091).")
        with self._failures("answer GET /v1/models"):
            response = self.client().get("/v1/models")
            self._check(response)
            card = _first_model(response.json())
        if card is None:
            raise RemoteError(f"{self._where()} serves no model (GET /v1/models listed none).")
        self.capabilities = _capabilities(card.get("capabilities"))
        model = str(card.get("id"))[:200]
        fingerprint = hashlib.sha256(f"remote-reference:{PROMPT_RATE}:{model}".encode()).hexdigest()[:16]
        uploads = card.get("voice_upload") is True and self.settings.remote_upload == "auto"
        log.info("remote engine: %s serves %s%s", self.url, model, " (voices uploaded once)" if uploads else "")
        return model, Server(self.url), fingerprint, uploads

    @property
    def uploads(self) -> bool:
        """Whether voices are uploaded once (the server keeps them) rather than sent with every request."""
        self.load()
        return self._state[3]

    def _where(self) -> str:
        return f"The remote speech server {self.url}"

    def _failures(self, doing: str):
        return _Failures(self._where(), doing, self.settings.remote_timeout)

    def _check(self, response) -> None:
        """An error response as a message naming the server: 4xx is the request's fault, 5xx the server's."""
        if response.status_code < 400:
            return
        message = _error_message(response)
        if response.status_code in (401, 403):
            raise RemoteError(f"{self._where()} refused the key ({response.status_code}): {message} "
                              "Check --remote-key.")
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            raise InvalidInput(f"{self._where()} refused the request: {message}")
        raise RemoteError(f"{self._where()} failed ({response.status_code}): {message}")

    # -- prompts -------------------------------------------------------------------------------
    def _encode_prompt(self, clip: audio.Clip, ref_text: str, mode: str) -> VoicePrompt:
        import torch

        clip = audio.resample(clip, PROMPT_RATE)
        pcm = np.round(np.clip(clip.samples, -1.0, 1.0) * 32767.0).astype(np.int16)
        return VoicePrompt(mode, ref_text, self.fingerprint, {"audio": torch.from_numpy(pcm)})

    def prompt_to_tensors(self, prompt: VoicePrompt) -> dict:
        return {"audio": prompt.tensors["audio"].contiguous()}

    def prompt_from_tensors(self, tensors: dict, mode: str, ref_text: str, fingerprint: str) -> VoicePrompt:
        import torch

        pcm = tensors.get("audio")
        longest = self.settings.max_reference_seconds * PROMPT_RATE
        if (set(tensors) != {"audio"} or not torch.is_tensor(pcm) or pcm.dtype != torch.int16 or pcm.ndim != 1
                or not MIN_PROMPT_SECONDS * PROMPT_RATE <= pcm.numel() <= longest):
            raise InvalidInput("The stored voice prompt is not a reference clip for the remote engine.")
        return VoicePrompt(mode, ref_text, fingerprint, {"audio": pcm})

    def wav(self, prompt: VoicePrompt) -> bytes:
        return audio.to_wav_bytes(prompt.tensors["audio"].numpy().astype(np.float32) / 32767.0, PROMPT_RATE)

    def data_url(self, prompt: VoicePrompt) -> str:
        return "data:audio/wav;base64," + base64.b64encode(self.wav(prompt)).decode("ascii")

    def voice_name(self, prompt: VoicePrompt) -> str:
        """The server's name for this prompt's voice: its audio, transcript and mode, hashed."""
        digest = hashlib.sha256(prompt.tensors["audio"].numpy().tobytes())
        digest.update(f"\0{prompt.mode}\0{prompt.ref_text if prompt.mode == 'icl' else ''}".encode())
        return f"remote-{digest.hexdigest()[:20]}"

    def upload(self, prompt: VoicePrompt) -> str:
        """The prompt's voice on the server, uploaded once (with a consent note) unless the server has it."""
        name = self.voice_name(prompt)
        with self._upload_lock:
            if name in self._uploaded:
                return name
            with self._failures("list its voices"):
                listing = self.client().get("/v1/audio/voices")
                self._check(listing)
                held = {v.get("name") for v in listing.json().get("data", []) if isinstance(v, dict)}
            if name not in held:
                form = {"name": name, "consent": CONSENT, "language": "Auto"}
                if prompt.mode == "icl":
                    form["ref_text"] = prompt.ref_text
                with self._failures("keep a voice (POST /v1/audio/voices)"):
                    answer = self.client().post("/v1/audio/voices", data=form,
                                                files={"audio_sample": (f"{name}.wav", self.wav(prompt), "audio/wav")})
                    self._check(answer)
                log.info("remote engine: voice %s uploaded to %s", name, self.url)
            self._uploaded.add(name)
        return name

    def forget(self, name: str) -> None:
        with self._upload_lock:
            self._uploaded.discard(name)

    # -- speech --------------------------------------------------------------------------------
    def body(self, job: SpeakJob, seed: int) -> dict:
        """One sentence as vLLM-Omni's speech request (a studio takes the same fields)."""
        sampling = job.sampling
        body = {
            "model": self.served_model,
            "input": job.text,
            "task_type": "Base",
            "language": job.language,
            "x_vector_only_mode": job.prompt.mode == "xvector",
            "response_format": "pcm",
            "stream": True,
            "max_new_tokens": max(1, math.ceil(job.max_seconds * FRAME_RATE)),
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": sampling.top_k,
            "repetition_penalty": sampling.repetition_penalty,
        }
        if self.uploads:
            body["voice"] = self.upload(job.prompt)
        else:
            body["ref_audio"] = self.data_url(job.prompt)
            if job.prompt.mode != "xvector":
                body["ref_text"] = job.prompt.ref_text
        if self.capabilities.seeds:
            body["seed"] = seed
        return body

    def speak(self, job: SpeakJob) -> Iterator[Piece]:
        """Each take is one streamed request; closing this iterator closes the response in flight."""
        self.load()
        for take, seed in enumerate(job.seeds):
            yield from self._take(job, take, seed)

    def _take(self, job: SpeakJob, take: int, seed: int) -> Iterator[Piece]:
        rate = self.capabilities.sample_rate
        limit = round(job.max_seconds * rate)
        received, carry, cut = 0, b"", False
        with self._failures("stream a sentence"), self._opened(), closing(self._send(job, seed)) as response:
            self._check_rate(response, rate)
            for data in response.iter_bytes():
                data, carry = _whole_samples(carry + data)
                samples = np.frombuffer(data, "<i2").astype(np.float32) / 32767.0
                if received + len(samples) >= limit:
                    samples, cut = samples[:limit - received], True
                received += len(samples)
                if len(samples):
                    yield Piece(take, samples)
                if cut:
                    break
        if received == 0:
            raise RemoteError(f"{self._where()} sent no audio for {job.text[:60]!r}.")
        yield Piece(take, np.zeros(0, np.float32), cut=cut)

    def _send(self, job: SpeakJob, seed: int):
        """The streamed response to one sentence; a voice the server no longer holds is uploaded again, once."""
        for attempt in (1, 2):
            body = self.body(job, seed)
            response = self.client().send(self.client().build_request("POST", "/v1/audio/speech", json=body),
                                          stream=True)
            if response.status_code == 404 and "voice" in body and attempt == 1:
                response.close()
                self.forget(body["voice"])  # deleted on the server, or a server with another library
                continue
            try:
                self._check(response)
            except BaseException:
                response.close()
                raise
            return response

    def _check_rate(self, response, rate: int) -> None:
        stated = response.headers.get("x-sample-rate")
        if stated and stated.isdigit() and int(stated) != rate:
            raise RemoteError(f"{self._where()} sends {stated} Hz audio; it said {rate} Hz.")

    def _opened(self):
        return _Counted(self)


class _Counted:
    """Counts a response being read, so `busy` tells whether a request is in flight."""

    def __init__(self, engine: RemoteEngine):
        self.engine = engine

    def __enter__(self):
        with self.engine._open_lock:
            self.engine._open += 1

    def __exit__(self, *exc):
        with self.engine._open_lock:
            self.engine._open -= 1
        return False


class _Failures:
    """httpx's errors as messages naming the server and what it was asked."""

    def __init__(self, where: str, doing: str, timeout: float):
        self.where, self.doing, self.timeout = where, doing, timeout

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        import httpx

        if error is None or isinstance(error, (StudioError, GeneratorExit)):
            return False
        if isinstance(error, httpx.ConnectError):
            raise RemoteError(f"{self.where} cannot be reached ({first_line(error)}). Is it running, and is "
                              "--remote-url right?") from error
        if isinstance(error, httpx.TimeoutException):
            raise RemoteError(f"{self.where} did not {self.doing} within {self.timeout:g} s (--remote-timeout). "
                              "It may be overloaded; try again.") from error
        if isinstance(error, (httpx.RemoteProtocolError, httpx.ReadError)):
            raise RemoteError(f"{self.where} broke off while asked to {self.doing} ({first_line(error)}). "
                              "Try again.") from error
        if isinstance(error, httpx.HTTPError):
            raise RemoteError(f"{self.where} failed to {self.doing}: {first_line(error)}") from error
        if isinstance(error, ValueError):  # JSON that is not what the server should send
            raise RemoteError(f"{self.where} gave an answer that is not a speech server's to {self.doing}.") \
                from error
        return False


def _whole_samples(data: bytes) -> tuple[bytes, bytes]:
    """Bytes of whole 16-bit samples, and the odd byte left for the next read."""
    cut = len(data) - len(data) % 2
    return data[:cut], data[cut:]


def _first_model(listing) -> dict | None:
    if not isinstance(listing, dict) or not isinstance(listing.get("data"), list):
        raise ValueError("not a model list")
    cards = [card for card in listing["data"] if isinstance(card, dict) and isinstance(card.get("id"), str)]
    return cards[0] if cards else None


def _capabilities(stated) -> Capabilities:
    """What the server says it can do (a studio says it), else what vLLM-Omni with Qwen3-TTS Base does."""
    if not isinstance(stated, dict):
        return STATED
    languages = tuple(n for n in stated.get("languages", ()) if isinstance(n, str))[:32] or STATED.languages
    modes = tuple(m for m in stated.get("modes", ()) if m in MODES) or STATED.modes
    rate = stated.get("sample_rate")
    rate = rate if isinstance(rate, int) and not isinstance(rate, bool) and 8000 <= rate <= 48000 else SAMPLE_RATE
    step = stated.get("step_seconds")
    step = float(step) if isinstance(step, (int, float)) and 0 < step <= 10 else STATED.step_seconds
    return Capabilities(languages=languages, modes=modes, sample_rate=rate, step_seconds=step,
                        tags=stated.get("tags") is True, takes_at_once=1, seeds=stated.get("seeds") is True)


def _error_message(response) -> str:
    """The message of an OpenAI-style error body, else the start of the body."""
    try:
        response.read()
        text = response.content[:ERROR_BYTES].decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - the status alone still says what happened
        return f"HTTP {response.status_code}"
    try:
        import json

        error = json.loads(text).get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"][:500]
        if isinstance(error, str):
            return error[:500]
    except (ValueError, AttributeError):
        pass
    return text.strip()[:300] or f"HTTP {response.status_code}"
