"""The Gradio Blocks app: tabs Reference, Preview, Compare, Library.

Adapters only. Each handler converts Gradio values into core types, calls one
core function, and converts the result back; every one is also a named API
endpoint (`api_name=`) that scripts reach with gradio_client. User mistakes
(`StudioError`) become `gr.Error` messages; anything else is logged with its
traceback and shown as a short generic message.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time

import gradio as gr
import numpy as np

from . import audio, streaming
from .config import Settings
from .engine import LANGUAGES, Engine, Sampling, SynthesisRequest
from .errors import StudioError

log = logging.getLogger(__name__)

MODE_CHOICES = [("ICL (audio + transcript)", "icl"), ("x-vector only (audio)", "xvector")]
INTERNAL_ERROR = "Something went wrong inside the studio; the details are in the server log."


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


def sampling_from(temperature, top_p, top_k, repetition_penalty, seed, max_frames) -> Sampling:
    seed = None if seed is None or int(seed) < 0 else int(seed)
    max_frames = None if not max_frames or int(max_frames) <= 0 else int(max_frames)
    return Sampling(float(temperature), float(top_p), int(top_k), float(repetition_penalty), seed, max_frames)


class StudioUI:
    """Holds the shared core objects and builds the Blocks app around them."""

    def __init__(self, settings: Settings, engine: Engine | None = None):
        self.settings = settings
        self.engine = engine or Engine(settings)

    # -- core adapters (each one is an API endpoint) ------------------------------------------
    def reference_clip(self, reference: str | None) -> audio.Clip:
        if not reference:
            raise StudioError("Upload or record a reference clip of the voice to clone.")
        return audio.load(reference, max_bytes=self.settings.max_upload_mb * 1e6,
                          max_seconds=self.settings.max_reference_seconds)

    def request(self, text, language, reference, ref_text, mode, temperature, top_p, top_k,
                repetition_penalty, seed, max_frames, progress=None) -> SynthesisRequest:
        sampling = sampling_from(temperature, top_p, top_k, repetition_penalty, seed, max_frames)
        clip = self.reference_clip(reference)
        if progress is not None:
            self.engine.load(progress=lambda message: progress(0.05, desc=message))
        prompt = self.engine.make_prompt(clip, ref_text, mode)
        return self.engine.check_request(SynthesisRequest(text, language, prompt, sampling))

    def synthesize(self, text, language, reference, ref_text, mode, temperature, top_p, top_k,
                   repetition_penalty, seed, max_frames, progress=gr.Progress(track_tqdm=True)):
        """Clone the reference voice and speak `text` (one shot). Returns a 24 kHz WAV and a summary."""
        started = time.perf_counter()
        request = self.request(text, language, reference, ref_text, mode, temperature, top_p, top_k,
                               repetition_penalty, seed, max_frames, progress)
        samples, used_seed = self.engine.synthesize(request)
        elapsed = time.perf_counter() - started
        seconds = len(samples) / 24000
        summary = (f"{seconds:.2f} s of audio in {elapsed:.2f} s (real-time factor {elapsed / max(seconds, 1e-9):.2f}); "
                   f"seed {used_seed}.")
        return to_gradio_audio(samples, 24000), summary

    def stream(self, text, language, reference, ref_text, mode, temperature, top_p, top_k,
               repetition_penalty, seed, max_frames):
        """Same inputs as synthesize; yields one 24 kHz WAV per chunk while generation runs (for scripts).

        Between chunks it yields a no-op update after each frame: Gradio can only close a generator
        between items, so this is what lets a cancelled or disconnected client stop generation within
        one frame. Scripts keep the items that are file paths.
        """
        request = self.request(text, language, reference, ref_text, mode, temperature, top_p, top_k,
                               repetition_penalty, seed, max_frames)
        for chunk in streaming.stream(self.engine, request, heartbeat=True):
            if chunk is None or not len(chunk.samples):
                yield gr.skip()
            else:
                yield to_gradio_audio(chunk.samples, 24000)

    def preview_stream(self, text, language, reference, ref_text, mode, temperature, top_p, top_k,
                       repetition_penalty, seed, max_frames, progress=gr.Progress(track_tqdm=True)):
        """The Preview player: chunks to the streaming player, then the whole take and its timings."""
        request = self.request(text, language, reference, ref_text, mode, temperature, top_p, top_k,
                               repetition_penalty, seed, max_frames, progress)
        take_stream = streaming.stream(self.engine, request, heartbeat=True)
        for chunk in take_stream:
            if chunk is None or not len(chunk.samples):
                yield gr.skip(), gr.skip(), gr.skip()
                continue
            yield to_gradio_audio(chunk.samples, 24000), gr.skip(), f"Streaming... {chunk.elapsed:.1f} s"
        take = take_stream.take
        yield gr.skip(), to_gradio_audio(take.samples, take.rate), take.summary()

    def status(self) -> str:
        return self.engine.status()

    # -- layout ------------------------------------------------------------------------------
    def build(self) -> gr.Blocks:
        with gr.Blocks(title="Voice Studio", delete_cache=(3600, 3600)) as demo:
            gr.Markdown("# Voice Studio\nClone a voice from a short clip with Qwen3-TTS.")
            status = gr.Markdown(self.engine.status(), elem_id="status")
            with gr.Tabs():
                with gr.Tab("Reference", id="reference"):
                    gr.Markdown("Upload or record the voice you want to clone (3-15 s of clear speech).")
                with gr.Tab("Preview", id="preview"):
                    self._preview_tab(status)
                with gr.Tab("Compare", id="compare"):
                    gr.Markdown("Compare several voices or cloning modes on the same line.")
                with gr.Tab("Library", id="library"):
                    gr.Markdown("Saved voices appear here.")
            demo.load(user_errors(self.status), outputs=status, api_name="status")
        return demo

    def _preview_tab(self, status):
        with gr.Row():
            with gr.Column():
                reference = gr.Audio(label="Reference clip", type="filepath", sources=["upload", "microphone"])
                ref_text = gr.Textbox(label="Reference transcript (ref_text)", lines=2,
                                      placeholder="Exactly what is said in the reference clip")
                mode = gr.Radio(MODE_CHOICES, value="icl", label="Cloning mode")
            with gr.Column():
                text = gr.Textbox(label="Text to speak", lines=4, value="Hello! This is my cloned voice speaking English.")
                language = gr.Dropdown(list(LANGUAGES), value="English", label="Language")
                with gr.Accordion("Sampling", open=False):
                    temperature = gr.Slider(0, 2, value=0.9, step=0.05, label="Temperature (0 = greedy)")
                    top_p = gr.Slider(0.05, 1, value=1.0, step=0.05, label="Top-p")
                    top_k = gr.Slider(0, 200, value=50, step=1, label="Top-k")
                    repetition_penalty = gr.Slider(1, 2, value=1.05, step=0.01, label="Repetition penalty")
                    seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)")
                    max_frames = gr.Number(value=0, precision=0, label="Max length in frames (0 = from text)")
                with gr.Row():
                    stream_button = gr.Button("Stream", variant="primary")
                    synthesize = gr.Button("Synthesize (one shot)")
                    stop = gr.Button("Stop", variant="stop")
        player = gr.Audio(label="Live", streaming=True, autoplay=True, interactive=False, elem_id="player")
        output = gr.Audio(label="Take", type="numpy", format="wav", interactive=False, elem_id="take")
        summary = gr.Markdown(elem_id="take-summary")
        inputs = [text, language, reference, ref_text, mode, temperature, top_p, top_k, repetition_penalty,
                  seed, max_frames]
        streamed = stream_button.click(
            user_errors(self.preview_stream), inputs=inputs, outputs=[player, output, summary],
            api_visibility="private", concurrency_limit=self.settings.concurrency,
        )
        streamed.then(self.status, outputs=status, api_visibility="private")
        one_shot = synthesize.click(
            user_errors(self.synthesize), inputs=inputs, outputs=[output, summary],
            api_name="synthesize", concurrency_limit=self.settings.concurrency,
        )
        one_shot.then(self.status, outputs=status, api_visibility="private")
        stop.click(None, cancels=[streamed, one_shot])
        # Scripts: a plain WAV output reaches gradio_client as one file per chunk.
        api_chunks = gr.Audio(type="numpy", format="wav", visible=False)
        api_button = gr.Button(visible=False)
        api_button.click(user_errors(self.stream), inputs=inputs, outputs=api_chunks, api_name="stream",
                         concurrency_limit=self.settings.concurrency)


def build_app(settings: Settings, engine: Engine | None = None) -> gr.Blocks:
    return StudioUI(settings, engine).build()
