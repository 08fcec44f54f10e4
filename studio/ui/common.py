"""What every tab shares: error conversion, request building from form values, engine notes.

Every import the UI needs from the engine layer comes through here, so a move of that
layer is one edit.
"""

from __future__ import annotations

import functools
import inspect
import logging
import queue
import threading
from pathlib import Path
from typing import Callable, Iterator

import gradio as gr
import numpy as np

from .. import audio
from ..errors import InvalidInput, StudioError
from ..streaming import Pump
from ..studio import MAX_TAKES, MODE_NAMES, Engine, Sampling, SpeakRequest, seconds_of_frames

log = logging.getLogger("studio.ui")

STATIC = Path(__file__).parent / "static"
INTERNAL_ERROR = "Something went wrong inside the studio; the details are in the server log."
HEARTBEAT_SECONDS = 0.1  # how often a one-shot request may be stopped
# How often a gradio_client stream may be stopped: each heartbeat is an event Gradio processes, and at 0.1 s
# they cost a tenth of a stream's time on a 2-core CPU (benchmarks/doors_speed.py).
STREAM_HEARTBEAT_SECONDS = 0.25
HUM_CHOICES = [("Off", "off"), ("Auto-detect", "auto"), ("50 Hz", "50"), ("60 Hz", "60")]
REFERENCE_CHOICE = "Reference clip below"
# How each cloning mode is offered; an engine offers the ones in its capabilities, in its own order.

__all__ = ["MAX_TAKES", "Engine", "Sampling", "asset", "seconds_of_frames", "user_errors"]


def asset(name: str) -> str:
    """A JavaScript or CSS file of the page, as text (they live in studio/ui/static)."""
    return (STATIC / name).read_text(encoding="utf-8")


def user_errors(fn):
    """Show StudioError messages to the user; log anything else with its traceback."""

    def convert(error: BaseException) -> gr.Error:
        if isinstance(error, gr.Error):
            return error
        if isinstance(error, StudioError):
            return gr.Error(str(error), print_exception=False)
        log.exception("internal error in %s", fn.__name__)
        return gr.Error(INTERNAL_ERROR, print_exception=False)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - converted, never swallowed
                raise convert(error) from error

        return generator_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - converted, never swallowed
            raise convert(error) from error

    return wrapper


def to_gradio_audio(samples: np.ndarray, rate: int) -> tuple[int, np.ndarray]:
    pcm = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    return rate, (pcm * 32767.0).astype(np.int16)


def in_worker(work: Callable, skip):
    """Run `work(stop)` in a worker thread, yielding `skip` until it is done; returns its result.

    Gradio can only stop a request between items, so a cancel or a disconnect (which
    closes this generator) sets `stop`, and generation ends within a frame.
    """
    stop = threading.Event()
    result: dict = {}

    def run():
        try:
            result["value"] = work(stop)
        except BaseException as error:  # noqa: BLE001 - re-raised below, in the request's thread
            result["error"] = error

    worker = threading.Thread(target=run, daemon=True, name="studio-one-shot")
    worker.start()
    try:
        while worker.is_alive():
            worker.join(HEARTBEAT_SECONDS)
            if worker.is_alive():
                yield skip
    finally:
        stop.set()  # closed early: generation stops at its next frame
    if "error" in result:
        raise result["error"]
    return result["value"]


def whole_number(value, name: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a whole number.") from None
    if not number.is_integer():
        raise InvalidInput(f"{name} must be a whole number.")
    return int(number)


def speak_request(text, language, voice, reference, ref_text, mode, temperature, top_p, top_k,
                  repetition_penalty, seed, max_frames, engine=None) -> SpeakRequest:
    """The Preview form's values as a core request (-1 seed: random; 0 max frames: from the text)."""
    try:
        seed = None if seed is None or int(seed) < 0 else int(seed)
        sampling = Sampling(float(temperature), float(top_p), int(top_k), float(repetition_penalty), seed,
                            seconds_of_frames(float(max_frames or 0)))
    except (TypeError, ValueError, OverflowError) as error:
        raise InvalidInput("Sampling settings must be numbers.") from error
    return SpeakRequest(text=text, language=language, voice=voice, reference=reference, ref_text=ref_text,
                        mode=mode or None, sampling=sampling, engine=engine or None)


def pumped(take_stream) -> Iterator:
    """A stream's chunks, generated in one worker thread, with None every STREAM_HEARTBEAT_SECONDS.

    Gradio asks a generator for each item from whichever pool thread is free; generation kept in
    one thread costs what the pipeline costs. Gradio can close a generator only between items, so
    the None items are what let Stop or a disconnect end generation at once.
    """
    pump = Pump(lambda: take_stream)
    try:
        while True:
            try:
                chunk = pump.get(timeout=STREAM_HEARTBEAT_SECONDS)
            except queue.Empty:
                yield None
                continue
            if chunk is None:
                return
            yield chunk
    finally:
        pump.cancel()


def clean_options(mono=True, resample=True, remove_dc=True, trim_silence=True, normalize=True, denoise=False,
                  hum="off", tail_ms=150) -> audio.CleanOptions:
    if hum not in {value for _, value in HUM_CHOICES}:
        raise InvalidInput("Hum filter must be off, auto, 50 or 60.")
    return audio.CleanOptions(mono=bool(mono), resample=bool(resample), remove_dc=bool(remove_dc),
                              trim_silence=bool(trim_silence), normalize=bool(normalize),
                              tail_ms=int(tail_ms or 0), denoise=bool(denoise), hum=hum)


def mode_choices(modes) -> list[tuple[str, str]]:
    """Radio choices for the cloning modes an engine offers (an unknown mode shows under its own name)."""
    return [(MODE_NAMES.get(mode, mode), mode) for mode in modes]


def engine_note(label: str, caps) -> str:
    """What an engine can do, in a line, derived from its capabilities (any languages, any cloning modes)."""
    return caps.describe(label)


def sampling_record(sampling: Sampling) -> dict:
    """The settings that made a take, as recorded with an approved preview."""
    return {"temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": sampling.top_k,
            "repetition_penalty": sampling.repetition_penalty, "max_seconds": sampling.max_seconds or 0}


def progress_reporter(progress):
    return lambda message: progress(0.05, desc=message)


def take_details(take) -> dict:
    return dict(seed=take.seed, duration=round(take.duration, 3), flags=take.flags)
