"""The Gradio Blocks app: tabs Reference, Preview, Compare, Library.

Adapters only. Each handler converts Gradio values into core types, calls the
core (engine, streaming, library), and converts the result back; each is also a
named API endpoint (`api_name=`) that scripts reach with gradio_client. User
mistakes (`StudioError`) become `gr.Error` messages; anything else is logged
with its traceback and shown as a short generic message.
"""

from __future__ import annotations

import functools
import inspect
import logging
import tempfile
import time
from pathlib import Path

import gradio as gr
import numpy as np

from . import audio, streaming
from .config import Settings
from .engine import (LANGUAGES, Engine, Sampling, SynthesisRequest, VoicePrompt, normalise_language,
                     validate_text)
from .errors import InvalidInput, ModelUnavailable, StudioError
from .library import Library, Voice
from .transcribe import Transcriber, Transcript, suggest_span

log = logging.getLogger(__name__)

HUM_CHOICES = [("Off", "off"), ("Auto-detect", "auto"), ("50 Hz", "50"), ("60 Hz", "60")]
MODE_CHOICES = [("ICL (audio + transcript)", "icl"), ("x-vector only (audio)", "xvector")]
INTERNAL_ERROR = "Something went wrong inside the studio; the details are in the server log."
VOICE_COLUMNS = ["name", "language", "mode", "tags", "created"]
REFERENCE_CHOICE = "Reference clip below"


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


def voice_rows(voices: list[Voice]) -> list[list[str]]:
    return [[v.name, v.language, v.mode, ", ".join(v.tags), v.created_at[:16].replace("T", " ")] for v in voices]


class StudioUI:
    """Holds the shared core objects and builds the Blocks app around them."""

    def __init__(self, settings: Settings, engine: Engine | None = None, library: Library | None = None,
                 transcriber: Transcriber | None = None):
        self.settings = settings
        self.engine = engine or Engine(settings)
        self.library = library or Library(settings.voices_dir, settings.max_upload_mb * 1e6)
        self.transcriber = transcriber or Transcriber(settings.whisper_model, settings.device)
        self.files = Path(tempfile.mkdtemp(prefix="voice-studio-"))

    def _wav(self, clip: audio.Clip, stem: str) -> str:
        """Write a clip for Gradio to serve (Gradio copies it into its own cache); drop ours after an hour."""
        cutoff = time.time() - 3600
        for old in self.files.glob("*"):
            if old.stat().st_mtime < cutoff:
                old.unlink(missing_ok=True)
        path = self.files / f"{stem}-{time.time_ns()}.wav"
        audio.write_wav(clip.samples, clip.rate, path)
        return str(path)

    # -- voices and references ---------------------------------------------------------------
    def reference_clip(self, reference: str | None) -> audio.Clip:
        if not reference:
            raise InvalidInput("Upload or record a reference clip of the voice to clone.")
        return audio.load(reference, max_bytes=self.settings.max_upload_mb * 1e6,
                          max_seconds=self.settings.max_reference_seconds)

    def prompt(self, voice: str | None, reference: str | None, ref_text: str | None, mode: str) -> VoicePrompt:
        """A library voice by name; else the uploaded reference; else the library's default voice."""
        if voice and voice.strip():
            return self.library.prompt(self.library.get(voice), self.engine)
        if reference:
            return self.engine.make_prompt(self.reference_clip(reference), ref_text, mode)
        default = self.library.default()
        if default is None:
            raise InvalidInput("Choose a voice from the library or upload a reference clip of the voice to clone.")
        return self.library.prompt(default, self.engine)

    def request(self, text, language, voice, reference, ref_text, mode, temperature, top_p, top_k,
                repetition_penalty, seed, max_frames, progress=None) -> SynthesisRequest:
        # Cheap checks first, so a typo is reported before any model work.
        text = validate_text(text, self.settings.max_text_chars)
        language = normalise_language(language)
        sampling = sampling_from(temperature, top_p, top_k, repetition_penalty, seed, max_frames)
        sampling.validate()
        if progress is not None:
            self.engine.load(progress=lambda message: progress(0.05, desc=message))
        prompt = self.prompt(voice, reference, ref_text, mode)
        return self.engine.check_request(SynthesisRequest(text, language, prompt, sampling))

    # -- reference endpoints -----------------------------------------------------------------
    def clean_reference(self, reference, start, end, options: audio.CleanOptions):
        """The trimmed upload and its cleaned version, with the report of what cleaning did."""
        clip = self.reference_clip(reference)
        if start or end:
            clip = audio.trim(clip, start or 0.0, end or None)
        cleaned, report = audio.clean(clip, options)
        return clip, cleaned, report

    def prepare_reference(self, reference, start=0.0, end=0.0, mono=True, resample=True, remove_dc=True,
                          trim_silence=True, normalize=True, denoise=False, hum="off", tail_ms=150):
        """Trim and clean an upload: returns the cleaned 24 kHz WAV and the quality report (JSON)."""
        if hum not in {value for _, value in HUM_CHOICES}:
            raise InvalidInput("Hum filter must be off, auto, 50 or 60.")
        options = audio.CleanOptions(mono=bool(mono), resample=bool(resample), remove_dc=bool(remove_dc),
                                     trim_silence=bool(trim_silence), normalize=bool(normalize),
                                     tail_ms=int(tail_ms or 0), denoise=bool(denoise), hum=hum)
        _, cleaned, report = self.clean_reference(reference, start, end, options)
        return self._wav(cleaned, "reference"), report.to_dict()

    def transcribe(self, reference, language="Japanese", progress=gr.Progress()):
        """Whisper transcript with detected language, probability and word timestamps (JSON)."""
        clip = self.reference_clip(reference)
        return self.transcriber.transcribe(clip, language, progress=lambda m: progress(0.1, desc=m)).to_dict()

    def trim_reference(self, audio_file, transcript: dict | None, start: float, end: float):
        """Cut a transcribed clip and its transcript at the same place, so ref_text always matches."""
        clip = self.reference_clip(audio_file)
        trimmed = audio.trim(clip, start, end or None)
        if not transcript:
            return self._wav(trimmed, "trimmed"), None, ""
        words = Transcript.from_dict(transcript)
        cut = words.cut_words(start, end or clip.duration)
        kept = words.slice(start, end or clip.duration)
        note = ""
        if cut:
            note = ("The trim cuts through " + ", ".join(repr(w.text.strip()) for w in cut) +
                    "; words are kept in the text when most of them is kept in the audio.")
        return self._wav(trimmed, "trimmed"), kept.to_dict(), note

    def suggest_reference(self, audio_file, transcript: dict | None):
        """Trim a transcribed clip to the suggested 3-15 s span at word or sentence boundaries."""
        if not transcript:
            raise InvalidInput("Transcribe the clip first: the suggestion uses its word timestamps.")
        clip = self.reference_clip(audio_file)
        span = suggest_span(Transcript.from_dict(transcript), clip.duration)
        path, kept, note = self.trim_reference(audio_file, transcript, span.start, span.end)
        return path, kept, " ".join(filter(None, [f"Kept {span.start:.2f}-{span.end:.2f} s.", span.note, note]))

    # -- synthesis endpoints -----------------------------------------------------------------
    def synthesize(self, text, language="English", voice=None, reference=None, ref_text=None, mode="icl",
                   temperature=0.9, top_p=1.0, top_k=50, repetition_penalty=1.05, seed=-1, max_frames=0,
                   progress=gr.Progress(track_tqdm=True)):
        """Speak `text` in a cloned voice (one shot). Returns a 24 kHz WAV and a summary."""
        started = time.perf_counter()
        request = self.request(text, language, voice, reference, ref_text, mode, temperature, top_p, top_k,
                               repetition_penalty, seed, max_frames, progress)
        samples, used_seed = self.engine.synthesize(request)
        elapsed = time.perf_counter() - started
        seconds = len(samples) / 24000
        summary = (f"{seconds:.2f} s of audio in {elapsed:.2f} s (real-time factor "
                   f"{elapsed / max(seconds, 1e-9):.2f}); seed {used_seed}.")
        return to_gradio_audio(samples, 24000), summary

    def stream(self, text, language="English", voice=None, reference=None, ref_text=None, mode="icl",
               temperature=0.9, top_p=1.0, top_k=50, repetition_penalty=1.05, seed=-1, max_frames=0):
        """Same inputs as synthesize; yields one 24 kHz WAV per chunk while generation runs (for scripts).

        Between chunks it yields a no-op update after each frame: Gradio can only close a generator
        between items, so this is what lets a cancelled or disconnected client stop generation within
        one frame. Scripts keep the items that are file paths.
        """
        request = self.request(text, language, voice, reference, ref_text, mode, temperature, top_p, top_k,
                               repetition_penalty, seed, max_frames)
        for chunk in streaming.stream(self.engine, request, heartbeat=True):
            if chunk is None or not len(chunk.samples):
                yield gr.skip()
            else:
                yield to_gradio_audio(chunk.samples, 24000)

    def preview_stream(self, text, language, voice, reference, ref_text, mode, temperature, top_p, top_k,
                       repetition_penalty, seed, max_frames, progress=gr.Progress(track_tqdm=True)):
        """The Preview player: chunks to the streaming player, then the whole take and its timings."""
        request = self.request(text, language, voice, reference, ref_text, mode, temperature, top_p, top_k,
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
        """Whether the TTS model is loaded, and where."""
        return self.engine.status()

    def refresh_status(self) -> str:
        return self.engine.status()

    # -- library endpoints -------------------------------------------------------------------
    def list_voices(self, query: str | None = None) -> list[dict]:
        """Voices whose name, tag or language contains `query` (all when empty)."""
        default = self.library.default()
        return [dict(v.summary(), default=default is not None and v.folder == default.folder)
                for v in self.library.list(query or "")]

    def save_voice(self, name, reference, ref_text=None, language="Japanese", mode="icl", notes=None, tags=None,
                   preview=None, original=None) -> dict:
        """Save a reference clip (and optionally an approved take) as a named voice.

        The clip is stored as given, at 24 kHz mono: clean it first (Reference tab or
        /prepare_reference). `original` is the raw upload it came from, kept beside it.
        """
        clip = self.reference_clip(reference)
        prompt = None
        try:
            prompt = self.engine.make_prompt(clip, ref_text, mode)
        except ModelUnavailable as error:
            log.warning("saving %r without a prompt (built on first use): %s", name, error)
        preview_audio = None
        if preview is not None:
            rate, samples = preview
            preview_audio = (audio.from_array(samples, rate).samples, rate)
        source = Path(original) if original and Path(original).is_file() else Path(reference)
        original = (source.name, source.read_bytes())
        voice = self.library.save(name, clip, ref_text or "", language, mode, prompt=prompt, notes=notes or "",
                                  tags=tags, original=original, preview=preview_audio)
        return voice.summary()

    def rename_voice(self, name: str, new_name: str) -> dict:
        return self.library.rename(name, new_name).summary()

    def duplicate_voice(self, name: str, new_name: str) -> dict:
        return self.library.duplicate(name, new_name).summary()

    def delete_voice(self, name: str) -> str:
        voice = self.library.delete(name)
        return f"Deleted {voice.name!r}. It is in the trash: Undo delete brings it back."

    def restore_voice(self, name: str | None = None) -> dict:
        return self.library.restore(name or None).summary()

    def set_default_voice(self, name: str) -> dict:
        return self.library.set_default(name).summary()

    def export_voice(self, name: str) -> str:
        voice = self.library.get(name)
        return str(self.library.export(voice.name, self.files / f"{voice.folder}.zip"))

    def import_voice(self, file: str, name: str | None = None, language: str = "Auto") -> dict:
        """Import a Voice Studio .zip, or a .pt voice file saved by the official Qwen3-TTS demo."""
        if not file:
            raise InvalidInput("Choose a voice file (.zip from Voice Studio, or .pt from the Qwen3-TTS demo).")
        path = Path(file)
        if path.suffix.lower() == ".pt":
            return self.library.import_official(path, name or path.stem, self.engine, language).summary()
        return self.library.import_zip(path).summary()

    def load_voice(self, name: str):
        """Details of a voice for the Library tab: summary, reference audio, approved preview."""
        voice = self.library.get(name)
        folder = self.library.path(voice)
        reference = self.library.reference_path(voice)
        preview = folder / voice.preview if voice.preview else None
        return voice.summary(), str(reference) if reference else None, str(preview) if preview else None

    # -- layout ------------------------------------------------------------------------------
    def voice_names(self) -> list[str]:
        return [v.name for v in self.library.voices()]

    def voice_choices(self) -> list[tuple[str, str]]:
        return [(REFERENCE_CHOICE, "")] + [(name, name) for name in self.voice_names()]

    def build(self) -> gr.Blocks:
        with gr.Blocks(title="Voice Studio", delete_cache=(3600, 3600)) as demo:
            gr.Markdown("# Voice Studio\nClone a voice from a short clip with Qwen3-TTS.")
            status = gr.Markdown(self.engine.status(), elem_id="status")
            with gr.Tabs() as tabs:
                with gr.Tab("Reference", id="reference"):
                    reference_tab = self._reference_tab()
                with gr.Tab("Preview", id="preview"):
                    preview = self._preview_tab(status)
                with gr.Tab("Compare", id="compare"):
                    gr.Markdown("Side-by-side comparison of voices and cloning modes, with measured speaker "
                                "similarity and intelligibility, is not built yet. Until then, use Preview with a "
                                "fixed seed to compare takes one after another.")
                with gr.Tab("Library", id="library") as library_tab:
                    self._library_tab(preview, tabs, library_tab)
            self._connect_reference(reference_tab, preview, tabs)
            demo.load(user_errors(self.status), outputs=status, api_name="status")
        return demo

    def _reference_tab(self) -> dict:
        gr.Markdown("Upload or record the voice to clone, trim it (waveform editor or start/end), clean it, "
                    "transcribe it, then use it in Preview. 3-15 s of clear speech from one speaker works best.")
        c = {}
        c["upload"] = gr.Audio(label="Recording", type="filepath", sources=["upload", "microphone"],
                               editable=True, elem_id="reference-upload")
        with gr.Row():
            c["start"] = gr.Number(value=0, label="Start (s)", minimum=0)
            c["end"] = gr.Number(value=0, label="End (s, 0 = end of clip)", minimum=0)
        with gr.Accordion("Cleaning", open=False):
            with gr.Row():
                c["mono"] = gr.Checkbox(value=True, label="Mono")
                c["resample"] = gr.Checkbox(value=True, label="Resample to 24 kHz")
                c["remove_dc"] = gr.Checkbox(value=True, label="Remove DC and rumble")
                c["trim_silence"] = gr.Checkbox(value=True, label="Trim leading/trailing silence")
                c["normalize"] = gr.Checkbox(value=True, label="Normalise loudness (-20 LUFS)")
            with gr.Row():
                c["denoise"] = gr.Checkbox(value=False, label="Denoise (noise profile from non-speech parts)")
                c["hum"] = gr.Dropdown(HUM_CHOICES, value="off", label="Mains hum filter")
                c["tail_ms"] = gr.Number(value=150, label="Silence tail (ms)", precision=0, minimum=0, maximum=1000)
        c["clean"] = gr.Button("Clean and check", variant="primary")
        with gr.Row():
            c["before"] = gr.Audio(label="Before", type="filepath", interactive=False)
            c["after"] = gr.Audio(label="After (used for cloning)", type="filepath", interactive=False,
                                  elem_id="reference-after")
        c["report"] = gr.Markdown(elem_id="reference-report")
        c["report_json"] = gr.JSON(visible=False)
        with gr.Row():
            c["language"] = gr.Dropdown(list(LANGUAGES), value="Japanese", label="Spoken language")
            c["transcribe"] = gr.Button("Transcribe")
        c["detected"] = gr.Markdown(elem_id="reference-detected")
        c["ref_text"] = gr.Textbox(label="Transcript (ref_text), editable", lines=2, elem_id="reference-text")
        c["transcript"] = gr.JSON(visible=False)
        with gr.Row():
            c["suggest"] = gr.Button("Trim to a suggested 3-15 s span")
            c["trim"] = gr.Button("Trim the cleaned clip to start/end")
            c["use"] = gr.Button("Use in Preview", variant="primary")
        c["trim_note"] = gr.Markdown(elem_id="reference-trim-note")
        return c

    def _connect_reference(self, c: dict, preview: dict, tabs) -> None:
        options = [c[k] for k in ("mono", "resample", "remove_dc", "trim_silence", "normalize", "denoise", "hum",
                                  "tail_ms")]

        def clean_clip(upload, start, end, mono, resample, remove_dc, trim_silence, normalize, denoise, hum,
                       tail_ms):
            options = audio.CleanOptions(mono=mono, resample=resample, remove_dc=remove_dc,
                                         trim_silence=trim_silence, normalize=normalize, denoise=denoise, hum=hum,
                                         tail_ms=int(tail_ms or 0))
            before, cleaned, report = self.clean_reference(upload, start, end, options)
            steps = "\n".join(f"- {step}" for step in report.steps) or "- none switched on"
            text = f"**After cleaning:** {report.after.advice()}\n\n**Steps:**\n{steps}"
            return (self._wav(before, "before"), self._wav(cleaned, "reference"), text, report.to_dict(), "", None,
                    "The audio changed: transcribe it again.")

        c["clean"].click(user_errors(clean_clip), inputs=[c["upload"], c["start"], c["end"], *options],
                         outputs=[c["before"], c["after"], c["report"], c["report_json"], c["ref_text"],
                                  c["transcript"], c["detected"]], api_visibility="private")
        api_report = gr.JSON(visible=False)
        api_cleaned = gr.Audio(type="filepath", visible=False)
        gr.Button(visible=False).click(user_errors(self.prepare_reference),
                                       inputs=[c["upload"], c["start"], c["end"], *options],
                                       outputs=[api_cleaned, api_report], api_name="prepare_reference")

        def transcribe_clip(after, upload, language, progress=gr.Progress()):
            transcript = self.transcribe(after or upload, language, progress)
            detected = (f"Detected **{transcript['language']}** (probability {transcript['probability']:.2f}); "
                        f"{len(transcript['words'])} words with timestamps.")
            return transcript["text"], transcript, detected

        c["transcribe"].click(user_errors(transcribe_clip), inputs=[c["after"], c["upload"], c["language"]],
                              outputs=[c["ref_text"], c["transcript"], c["detected"]], api_visibility="private")
        api_transcript = gr.JSON(visible=False)
        gr.Button(visible=False).click(user_errors(self.transcribe), inputs=[c["upload"], c["language"]],
                                       outputs=api_transcript, api_name="transcribe")

        def trimmed(result):
            path, transcript, note = result
            report = audio.assess(audio.load(path)).advice()
            text = transcript["text"] if transcript else gr.skip()
            return path, transcript, text, note, f"**After trimming:** {report}"

        def suggest_clip(after, transcript):
            if not after:
                raise InvalidInput("Clean the clip first; the suggestion trims the cleaned clip.")
            return trimmed(self.suggest_reference(after, transcript))

        def trim_clip(after, transcript, start, end):
            if not after:
                raise InvalidInput("Clean the clip first.")
            return trimmed(self.trim_reference(after, transcript, start or 0.0, end or 0.0))

        outputs = [c["after"], c["transcript"], c["ref_text"], c["trim_note"], c["report"]]
        c["suggest"].click(user_errors(suggest_clip), inputs=[c["after"], c["transcript"]], outputs=outputs,
                           api_visibility="private")
        c["trim"].click(user_errors(trim_clip), inputs=[c["after"], c["transcript"], c["start"], c["end"]],
                        outputs=outputs, api_visibility="private")

        def use_clip(after, ref_text, upload):
            if not after:
                raise InvalidInput("Clean the clip first (Clean and check).")
            report = audio.assess(audio.load(after))
            if not report.ok:
                problems = " ".join(i.message for i in report.issues if i.level == "error")
                raise InvalidInput(f"This reference cannot be used yet: {problems}")
            return after, ref_text, "", upload, gr.Tabs(selected="preview")

        c["use"].click(user_errors(use_clip), inputs=[c["after"], c["ref_text"], c["upload"]],
                       outputs=[preview["reference"], preview["ref_text"], preview["voice"], preview["original"],
                                tabs],
                       api_visibility="private")

    def _preview_tab(self, status) -> dict:
        default = self.library.default()
        with gr.Row():
            with gr.Column():
                # Custom values: voices saved after the page was built are valid too; the library checks names.
                voice = gr.Dropdown(self.voice_choices(), value="", label="Voice", allow_custom_value=True,
                                    info="A library voice, or the reference clip below (when none is "
                                         f"uploaded: the default voice{f', {default.name}' if default else ''})",
                                    elem_id="preview-voice")
                reference = gr.Audio(label="Reference clip", type="filepath", sources=["upload", "microphone"],
                                     elem_id="preview-reference")
                ref_text = gr.Textbox(label="Reference transcript (ref_text)", lines=2,
                                      placeholder="Exactly what is said in the reference clip")
                mode = gr.Radio(MODE_CHOICES, value="icl", label="Cloning mode")
            with gr.Column():
                text = gr.Textbox(label="Text to speak", lines=4,
                                  value="Hello! This is my cloned voice speaking English.")
                language = gr.Dropdown(list(LANGUAGES), value="English", label="Language")
                with gr.Accordion("Sampling", open=False):
                    temperature = gr.Slider(0, 2, value=0.9, step=0.05, label="Temperature (0 = greedy)")
                    top_p = gr.Slider(0.05, 1, value=1.0, step=0.05, label="Top-p")
                    top_k = gr.Slider(0, 200, value=50, step=1, label="Top-k")
                    repetition_penalty = gr.Slider(1, 2, value=1.05, step=0.01, label="Repetition penalty")
                    seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)")
                    max_frames = gr.Number(value=0, precision=0, label="Max frames per sentence (0 = from text)")
                with gr.Row():
                    stream_button = gr.Button("Stream", variant="primary")
                    synthesize = gr.Button("Synthesize (one shot)")
                    stop = gr.Button("Stop", variant="stop")
        player = gr.Audio(label="Live", streaming=True, autoplay=True, interactive=False, elem_id="player")
        output = gr.Audio(label="Take", type="numpy", format="wav", interactive=False, elem_id="take")
        summary = gr.Markdown(elem_id="take-summary")
        inputs = [text, language, voice, reference, ref_text, mode, temperature, top_p, top_k,
                  repetition_penalty, seed, max_frames]
        streamed = stream_button.click(
            user_errors(self.preview_stream), inputs=inputs, outputs=[player, output, summary],
            api_visibility="private", concurrency_limit=self.settings.concurrency,
        )
        streamed.then(self.refresh_status, outputs=status, api_visibility="private")
        one_shot = synthesize.click(
            user_errors(self.synthesize), inputs=inputs, outputs=[output, summary],
            api_name="synthesize", concurrency_limit=self.settings.concurrency,
        )
        one_shot.then(self.refresh_status, outputs=status, api_visibility="private")
        stop.click(None, cancels=[streamed, one_shot])
        # Scripts: a plain WAV output reaches gradio_client as one file per chunk.
        api_chunks = gr.Audio(type="numpy", format="wav", visible=False)
        api_button = gr.Button(visible=False)
        api_button.click(user_errors(self.stream), inputs=inputs, outputs=api_chunks, api_name="stream",
                         concurrency_limit=self.settings.concurrency)
        # The raw upload behind a reference cleaned on the Reference tab; a direct upload here clears it.
        original = gr.State(None)
        reference.upload(lambda: None, outputs=original, api_visibility="private")
        return dict(voice=voice, reference=reference, ref_text=ref_text, mode=mode, take=output, original=original)

    def _library_tab(self, preview: dict, tabs, library_tab) -> None:
        with gr.Row():
            query = gr.Textbox(label="Search by name, tag or language", scale=3)
            refresh = gr.Button("Refresh", scale=1)
        table = gr.Dataframe(voice_rows(self.library.voices()), headers=VOICE_COLUMNS, interactive=False,
                             label="Voices", elem_id="voice-table")
        with gr.Row():
            with gr.Column():
                selected = gr.Dropdown(self.voice_names(), label="Voice", elem_id="library-voice",
                                       allow_custom_value=True)
                details = gr.JSON(label="Details")
                reference_audio = gr.Audio(label="Reference", type="filepath", interactive=False)
                preview_audio = gr.Audio(label="Approved preview", type="filepath", interactive=False)
            with gr.Column():
                with gr.Row():
                    use = gr.Button("Load into Preview", variant="primary")
                    make_default = gr.Button("Set as default")
                new_name = gr.Textbox(label="New name (for Rename / Duplicate)")
                with gr.Row():
                    rename = gr.Button("Rename")
                    duplicate = gr.Button("Duplicate")
                with gr.Row():
                    delete = gr.Button("Delete", variant="stop")
                    undo = gr.Button("Undo delete")
                export = gr.Button("Export as .zip")
                exported = gr.File(label="Exported voice", interactive=False)
                message = gr.Markdown(elem_id="library-message")
        with gr.Accordion("Save the current reference as a voice", open=True):
            with gr.Row():
                save_name = gr.Textbox(label="Name", elem_id="save-name")
                save_language = gr.Dropdown(list(LANGUAGES), value="Japanese", label="Reference language")
            with gr.Row():
                save_notes = gr.Textbox(label="Notes")
                save_tags = gr.Textbox(label="Tags (comma separated)")
            with_take = gr.Checkbox(label="Keep the last Preview take as the approved preview", value=False)
            save = gr.Button("Save voice", variant="primary")
        with gr.Accordion("Import a voice (.zip from Voice Studio, .pt from the Qwen3-TTS demo)", open=False):
            import_file = gr.File(label="Voice file", file_types=[".zip", ".pt"], type="filepath")
            import_name = gr.Textbox(label="Name (for .pt files)")
            import_language = gr.Dropdown(list(LANGUAGES), value="Auto", label="Language (for .pt files)")
            import_button = gr.Button("Import")
        result = gr.JSON(visible=False)

        def refreshed(query_text="", keep=None):
            names = self.voice_names()
            choice = keep if keep in names else None
            rows = voice_rows(self.library.list(query_text or ""))
            return (gr.update(value=rows), gr.update(choices=names, value=choice),
                    gr.update(choices=self.voice_choices()))

        listing = [table, selected, preview["voice"]]

        def after(event, keep_from=None):
            keep = keep_from or selected
            event.then(lambda q, k: refreshed(q, k), inputs=[query, keep], outputs=listing,
                       api_visibility="private")

        refresh.click(lambda q: refreshed(q), inputs=query, outputs=listing, api_visibility="private")
        query.submit(lambda q: refreshed(q), inputs=query, outputs=listing, api_visibility="private")
        listed = gr.JSON(visible=False)
        gr.Button(visible=False).click(user_errors(self.list_voices), inputs=query, outputs=listed,
                                       api_name="list_voices")
        selected.change(user_errors(self.load_voice), inputs=selected,
                        outputs=[details, reference_audio, preview_audio], api_name="load_voice")
        library_tab.select(lambda q, name: refreshed(q, name), inputs=[query, selected], outputs=listing,
                           api_visibility="private").then(
            lambda name: self.load_voice(name) if name else (None, None, None), inputs=selected,
            outputs=[details, reference_audio, preview_audio], api_visibility="private")

        def take_if_wanted(keep, take):
            return take if keep else None

        def save_from_preview(name, reference, ref_text, language, mode, notes, tags, keep, take, original):
            voice = self.save_voice(name, reference, ref_text, language, mode, notes, tags,
                                    take_if_wanted(keep, take), original)
            return voice, f"Saved {voice['name']!r}.", gr.update(value=voice["name"])

        saved = save.click(user_errors(save_from_preview),
                           inputs=[save_name, preview["reference"], preview["ref_text"], save_language,
                                   preview["mode"], save_notes, save_tags, with_take, preview["take"],
                                   preview["original"]],
                           outputs=[result, message, save_name], api_visibility="private")
        after(saved, save_name)
        # The API form of saving: upload + fields, no dependency on the Preview tab.
        api_reference = gr.Audio(type="filepath", visible=False)
        gr.Button(visible=False).click(
            user_errors(self.save_voice),
            inputs=[save_name, api_reference, preview["ref_text"], save_language, preview["mode"], save_notes,
                    save_tags],
            outputs=result, api_name="save_voice")

        def confirm(template):
            return lambda summary: template.format(**summary)

        renamed = rename.click(user_errors(self.rename_voice), inputs=[selected, new_name], outputs=result,
                               api_name="rename_voice")
        renamed.then(confirm("Renamed to {name!r}."), inputs=result, outputs=message, api_visibility="private")
        after(renamed, new_name)
        duplicated = duplicate.click(user_errors(self.duplicate_voice), inputs=[selected, new_name],
                                     outputs=result, api_name="duplicate_voice")
        duplicated.then(confirm("Duplicated as {name!r}."), inputs=result, outputs=message,
                        api_visibility="private")
        after(duplicated, new_name)
        deleted = delete.click(user_errors(self.delete_voice), inputs=selected, outputs=message,
                               api_name="delete_voice")
        after(deleted)
        restore_name = gr.Textbox(visible=False)  # empty: the most recently deleted voice
        restored = undo.click(user_errors(self.restore_voice), inputs=restore_name, outputs=result,
                              api_name="restore_voice")
        restored.then(confirm("Restored {name!r}."), inputs=result, outputs=message, api_visibility="private")
        defaulted = make_default.click(user_errors(self.set_default_voice), inputs=selected, outputs=result,
                                       api_name="set_default_voice")
        defaulted.then(confirm("{name!r} is now the default voice."), inputs=result, outputs=message,
                       api_visibility="private")
        export.click(user_errors(self.export_voice), inputs=selected, outputs=exported, api_name="export_voice")
        imported = import_button.click(user_errors(self.import_voice),
                                       inputs=[import_file, import_name, import_language], outputs=result,
                                       api_name="import_voice")
        imported.then(confirm("Imported {name!r}."), inputs=result, outputs=message, api_visibility="private")
        after(imported)
        after(restored)

        def use_voice(name):
            if not name:
                raise InvalidInput("Pick a voice first.")
            return gr.update(value=name), gr.Tabs(selected="preview")

        use.click(user_errors(use_voice), inputs=selected, outputs=[preview["voice"], tabs],
                  api_visibility="private")


def build_app(settings: Settings, engine: Engine | None = None, transcriber: Transcriber | None = None) -> gr.Blocks:
    return StudioUI(settings, engine, transcriber=transcriber).build()
