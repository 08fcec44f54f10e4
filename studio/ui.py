"""The Gradio door: tabs Reference, Preview, Compare, Library, and the named API endpoints.

Adapters only. Each handler converts Gradio values into core types, calls the
`Studio`, and converts the result back; each action is also a named endpoint
(`api_name=`) that scripts reach with gradio_client. User mistakes
(`StudioError`) become `gr.Error` messages; anything else is logged with its
traceback and shown as a short generic message. Layout and wiring are separate
methods: `_*_layout` builds components, `_wire_*` connects them.
"""

from __future__ import annotations

import functools
import inspect
import logging
import queue
import threading
from typing import Callable, Iterator

import gradio as gr
import numpy as np

from . import audio
from .config import Settings
from .errors import InvalidInput, StudioError
from .languages import LANGUAGES
from .library import Voice
from .quality import picture
from .streaming import Chunk, Pump, Stream
from .studio import (MAX_COLUMNS, MAX_TAKES, MODE_NAMES, Column, CompareRequest, Engine, NewVoice, Sampling,
                     SpeakRequest, Studio, seconds_of_frames)
from .transcribe import Transcriber

log = logging.getLogger(__name__)

HUM_CHOICES = [("Off", "off"), ("Auto-detect", "auto"), ("50 Hz", "50"), ("60 Hz", "60")]
MODE_CHOICES = [(MODE_NAMES[mode], mode) for mode in ("icl", "xvector")]
INTERNAL_ERROR = "Something went wrong inside the studio; the details are in the server log."
VOICE_COLUMNS = ["name", "language", "mode", "tags", "created"]
REFERENCE_CHOICE = "Reference clip below"
HEARTBEAT_SECONDS = 0.1  # how often a one-shot request may be stopped
REFERENCE_COLUMN = "Reference clip (Preview tab)"
COLUMN_MODES = [("The voice's own mode", "")] + MODE_CHOICES
RANKING = ("**How takes are ranked:** combined = speaker similarity (cosine to the reference, resemblyzer) "
           "- error rate (Whisper's transcript vs the text: WER, or CER for Japanese, Chinese, Korean) "
           "- 0.5 per serious flag (silent, runaway, cut off, wrong language) - 0.2 per minor flag (clipped, "
           "long pauses). The best take of each column is shown; ★ marks the best value in each row.")
SCORE_ROWS = [("similarity", "Speaker similarity", max), ("error_rate", "Error rate", min),
              ("duration", "Duration (s)", None), ("speaking_rate", "Characters per second", None),
              ("time_to_first_audio", "First audio (s)", min), ("real_time_factor", "Real-time factor", min),
              ("combined", "Combined", max)]
EMPTY_LIBRARY = "The library is empty. Save a voice below (from the Preview tab's reference) or import one."


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


def take_details(take) -> dict:
    return dict(seed=take.seed, duration=round(take.duration, 3), flags=take.flags)


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


def pumped(take_stream: Stream) -> Iterator[Chunk | None]:
    """A stream's chunks, generated in one worker thread, with None every HEARTBEAT_SECONDS.

    Gradio asks a generator for each item from whichever pool thread is free; generation kept in
    one thread costs what the pipeline costs. Gradio can close a generator only between items, so
    the None items are what let Stop or a disconnect end generation at once.
    """
    pump = Pump(lambda: take_stream)
    try:
        while True:
            try:
                chunk = pump.get(timeout=HEARTBEAT_SECONDS)
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


def column_from_text(value: str, engines: tuple[str, ...]) -> Column:
    """ "Sakura", "Sakura:xvector" (another cloning mode), "Sakura@chatterbox-turbo" (another engine), or both."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput('Each voice to compare is a name, optionally with a mode and an engine: "Sakura", '
                           '"Sakura:xvector", "Sakura@chatterbox-turbo".')
    value, engine = value, ""
    if "@" in value and value.rpartition("@")[2] in engines:
        value, _, engine = value.rpartition("@")
    name, _, mode = value.rpartition(":") if value.endswith((":icl", ":xvector")) else (value, "", "")
    return Column(voice=name.strip(), mode=mode or None, engine=engine or None)


def engine_note(engine: Engine) -> str:
    """What an engine can do, in a line, so the form explains what it offers."""
    return engine.capabilities.describe(engine.label)


def sampling_record(sampling: Sampling) -> dict:
    """The settings that made a take, as recorded with an approved preview."""
    return {"temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": sampling.top_k,
            "repetition_penalty": sampling.repetition_penalty, "max_seconds": sampling.max_seconds or 0}


def result_summary(result) -> dict:
    return {"column": result.column.label(),
            "takes": [dict(t.scores.to_dict(), seed=t.take.seed) for t in result.takes]}


def score_table(results) -> str:
    """Rows of measures, one column per compared voice; ★ marks the best value of each row."""
    if not results:
        return ""
    best = [r.best.scores.to_dict() for r in results]
    header = "| | " + " | ".join(r.column.label() for r in results) + " |\n|---|" + "---|" * len(results)
    lines = [header]
    for key, title, pick in SCORE_ROWS:
        values = [b.get(key) for b in best]
        known = [v for v in values if v is not None]
        star = pick(known) if pick and len(known) > 1 else None
        cells = ["–" if v is None else (f"**{v:.3g} ★**" if v == star else f"{v:.3g}") for v in values]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    similarities = [b["similarity"] for b in best if b["similarity"] is not None]
    if len(similarities) > 1:
        top = max(similarities)
        lines.insert(2, "| Similarity vs the best column | " + " | ".join(
            "–" if b["similarity"] is None else f"{b['similarity'] - top:+.3f}" for b in best) + " |")
    lines.append("| Flags | " + " | ".join(", ".join(b["flags"]) or "none" for b in best) + " |")
    return "\n".join(lines)


def column_markdown(result) -> str:
    best = result.best
    lines = [f"**{result.column.label()}**, seed {best.take.seed}: combined {best.scores.combined:.3f}",
             f"Heard: “{best.scores.transcript or ''}”", f"Flags: {', '.join(best.scores.flags) or 'none'}"]
    if len(result.takes) > 1:
        lines.append("Ranking: " + ", ".join(f"seed {t.take.seed} = {t.scores.combined:.3f}" for t in result.takes))
    return "\n\n".join(lines)


def voice_rows(voices: list[Voice]) -> list[list[str]]:
    return [[v.name, v.language, v.mode, ", ".join(v.tags), v.created_at[:16].replace("T", " ")] for v in voices]


def progress_reporter(progress):
    return lambda message: progress(0.05, desc=message)


class StudioUI:
    """Builds the Blocks app around one `Studio`."""

    def __init__(self, studio: Studio):
        self.studio = studio
        self.settings = studio.settings

    # -- reference endpoints -----------------------------------------------------------------
    def prepare_reference(self, reference, start=0.0, end=0.0, mono=True, resample=True, remove_dc=True,
                          trim_silence=True, normalize=True, denoise=False, hum="off", tail_ms=150):
        """Trim and clean an upload: returns the cleaned 24 kHz WAV and the quality report (JSON)."""
        options = clean_options(mono, resample, remove_dc, trim_silence, normalize, denoise, hum, tail_ms)
        result = self.studio.prepare_reference(reference, start or 0.0, end or 0.0, options)
        return str(self.studio.write_wav(result.cleaned, "reference")), result.report.to_dict()

    def transcribe(self, reference, language="Japanese", progress=gr.Progress()):
        """Whisper transcript with detected language, probability and word timestamps (JSON)."""
        return self.studio.transcribe(reference, language, progress=progress_reporter(progress)).to_dict()

    # -- synthesis endpoints -----------------------------------------------------------------
    def synthesize(self, text, language="English", voice=None, reference=None, ref_text=None, mode="",
                   temperature=0.9, top_p=1.0, top_k=50, repetition_penalty=1.05, seed=-1, max_frames=0,
                   retries=0, engine="", progress=gr.Progress(track_tqdm=True)):
        """Speak `text` in a cloned voice (one shot). Returns a 24 kHz WAV and a summary.

        `engine` picks the TTS engine ("" = the server's default): qwen, chatterbox-turbo or marvis.

        Generation runs in a worker while this generator yields no-op updates: Gradio can only stop a
        request between items, so a cancel or a disconnect then ends generation within a frame.
        """
        request = speak_request(text, language, voice, reference, ref_text, mode, temperature, top_p, top_k,
                                repetition_penalty, seed, max_frames, engine)

        def work(stop):
            take = self.studio.synthesize(request, should_stop=stop.is_set, progress=progress_reporter(progress))
            return self.studio.retry_flagged(request, take, int(retries or 0), should_stop=stop.is_set)

        take, report = yield from in_worker(work, (gr.skip(), gr.skip()))
        yield to_gradio_audio(take.samples, take.rate), " ".join([take.summary(), *report])

    def synthesize_takes(self, text, language="English", voice=None, reference=None, ref_text=None, mode="",
                         temperature=0.9, top_p=1.0, top_k=50, repetition_penalty=1.05, seed=-1, max_frames=0,
                         takes=2, engine="", progress=gr.Progress(track_tqdm=True)):
        """Several takes of one line in one batch (seeds seed, seed+1, ...), at about the cost of one.

        Returns their 24 kHz WAV files and, per take, its seed, duration, frames and flags (JSON).
        """
        request = speak_request(text, language, voice, reference, ref_text, mode, temperature, top_p, top_k,
                                repetition_penalty, seed, max_frames, engine)
        made = yield from in_worker(lambda stop: self.studio.synthesize_takes(
            request, whole_number(takes, "Takes"), should_stop=stop.is_set, progress=progress_reporter(progress)),
            (gr.skip(), gr.skip()))
        files = [str(self.studio.write_wav(audio.Clip(t.samples, t.rate), f"take-{t.seed}")) for t in made]
        yield files, [take_details(t) for t in made]

    def preview_takes(self, text, language, voice, reference, ref_text, mode, temperature, top_p, top_k,
                      repetition_penalty, seed, max_frames, retries=0, takes=1, engine="",
                      progress=gr.Progress(track_tqdm=True)):
        """The Preview's one-shot button: one take (with retries), or several side by side to pick from."""
        count = whole_number(takes, "Takes")
        request = speak_request(text, language, voice, reference, ref_text, mode, temperature, top_p, top_k,
                                repetition_penalty, seed, max_frames, engine)
        report = progress_reporter(progress)

        def work(stop):
            if count == 1:
                take = self.studio.synthesize(request, should_stop=stop.is_set, progress=report)
                take, notes = self.studio.retry_flagged(request, take, int(retries or 0), should_stop=stop.is_set)
                return [take], " ".join([take.summary(), *notes])
            made = self.studio.synthesize_takes(request, count, should_stop=stop.is_set, progress=report)
            lines = [f"{count} takes in one batch, {made[0].total_time:.2f} s in all: pick one below. The same "
                     "seed and number of takes give the same takes again."]
            lines += [f"- Take {n + 1}: seed {t.seed}, {t.duration:.2f} s. {' '.join(t.flags)}"
                      for n, t in enumerate(made)]
            return made, "\n".join(lines)

        made, summary = yield from in_worker(work, (gr.skip(),) * (2 + MAX_TAKES))
        players = [gr.update(value=None, visible=False)] * MAX_TAKES
        if count > 1:
            players[:count] = [gr.update(value=to_gradio_audio(t.samples, t.rate), visible=True,
                                         label=f"Take {n + 1} (seed {t.seed})") for n, t in enumerate(made)]
        yield (to_gradio_audio(made[0].samples, made[0].rate), summary, *players)

    def stream(self, text, language="English", voice=None, reference=None, ref_text=None, mode="",
               temperature=0.9, top_p=1.0, top_k=50, repetition_penalty=1.05, seed=-1, max_frames=0, engine=""):
        """Same inputs as synthesize; yields one 24 kHz WAV per chunk while generation runs (for scripts).

        Between chunks it yields a no-op update after each frame: Gradio can only close a generator
        between items, so this is what lets a cancelled or disconnected client stop generation within
        one frame. Scripts keep the items that are file paths.
        """
        request = speak_request(text, language, voice, reference, ref_text, mode, temperature, top_p, top_k,
                                repetition_penalty, seed, max_frames, engine)
        take_stream = self.studio.stream(request)
        for chunk in pumped(take_stream):
            if chunk is None:
                yield gr.skip()
            else:
                yield to_gradio_audio(chunk.samples, take_stream.rate)

    def preview_stream(self, text, language, voice, reference, ref_text, mode, temperature, top_p, top_k,
                       repetition_penalty, seed, max_frames, retries=0, engine="",
                       progress=gr.Progress(track_tqdm=True)):
        """The Preview player: chunks to the streaming player, then the whole take and its timings."""
        request = speak_request(text, language, voice, reference, ref_text, mode, temperature, top_p, top_k,
                                repetition_penalty, seed, max_frames, engine)
        take_stream = self.studio.stream(request, progress=progress_reporter(progress))
        rate = take_stream.rate
        for chunk in pumped(take_stream):
            if chunk is None:
                yield gr.skip(), gr.skip(), gr.skip()
                continue
            yield to_gradio_audio(chunk.samples, rate), gr.skip(), f"Streaming... {chunk.elapsed:.1f} s"
        take, report = take_stream.take, []
        if retries:
            yield gr.skip(), to_gradio_audio(take.samples, take.rate), take.summary() + " Scoring the take ..."
            take, report = self.studio.retry_flagged(request, take, int(retries))
        yield gr.skip(), to_gradio_audio(take.samples, take.rate), " ".join([take.summary(), *report])

    # -- compare endpoints -------------------------------------------------------------------
    def score_take(self, audio_file, reference=None, text="", language="Auto", progress=gr.Progress()):
        """Scores of any take: speaker similarity to `reference`, error rate against `text`, flags (JSON)."""
        return self.studio.score_take(audio_file, reference or None, text, language,
                                      progress=progress_reporter(progress)).to_dict()

    def compare(self, text, language="English", voices=None, reference=None, ref_text=None, seed=0, takes=1,
                max_frames=0):
        """Compare voices (["Sakura", "Sakura:xvector", ...]) and/or a reference clip on one text.

        Returns the scores of every take per column (best first, JSON) and the best take of each column.
        """
        columns = [column_from_text(v, self.studio.engine_names()) for v in (voices or [])]
        if reference:
            columns.append(Column(reference=reference, ref_text=ref_text))
        results = self.studio.compare(self._compare_request(text, language, columns, seed, takes, max_frames))
        files = [str(self.studio.write_wav(audio.Clip(r.best.take.samples, r.best.take.rate), "compare"))
                 for r in results]
        return [result_summary(r) for r in results], files

    def _compare_request(self, text, language, columns, seed, takes, max_frames) -> CompareRequest:
        try:
            sampling = Sampling(max_seconds=seconds_of_frames(float(max_frames or 0)))
            return CompareRequest(text or "", language, tuple(columns), int(seed or 0), int(takes or 1), sampling)
        except (TypeError, ValueError) as error:
            raise InvalidInput("Seed, takes and max frames must be whole numbers.") from error

    def status(self) -> str:
        """Whether the TTS model is loaded, and where."""
        return self.studio.status()

    # -- library endpoints -------------------------------------------------------------------
    def list_voices(self, query: str | None = None) -> list[dict]:
        """Voices whose name, tag or language contains `query` (all when empty)."""
        return self.studio.list_voices(query)

    def save_voice(self, name, reference, ref_text=None, language="Japanese", mode="icl", notes=None, tags=None,
                   preview=None, original=None) -> dict:
        """Save a reference clip (and optionally an approved take) as a named voice.

        The clip is stored as given, at 24 kHz mono: clean it first (Reference tab or
        /prepare_reference). `original` is the raw upload it came from, kept beside it.
        """
        take = self.studio.take_clip(preview) if preview else None
        new = NewVoice(name=name, reference=reference, ref_text=ref_text, language=language, mode=mode or "icl",
                       notes=notes, tags=tags, preview=take, original=original)
        return self.studio.save_voice(new).summary()

    def rename_voice(self, name: str, new_name: str) -> dict:
        return self.studio.rename_voice(name, new_name).summary()

    def duplicate_voice(self, name: str, new_name: str) -> dict:
        return self.studio.duplicate_voice(name, new_name).summary()

    def delete_voice(self, name: str) -> str:
        voice = self.studio.delete_voice(name)
        return f"Deleted {voice.name!r}. It is in the trash: Undo delete brings it back."

    def restore_voice(self, name: str | None = None) -> dict:
        return self.studio.restore_voice(name).summary()

    def set_default_voice(self, name: str) -> dict:
        return self.studio.set_default_voice(name).summary()

    def empty_trash(self) -> str:
        """Remove every deleted voice for good, to free disk space (Undo delete cannot bring them back)."""
        count, freed = self.studio.empty_trash()
        if not count:
            return "The trash is already empty."
        return f"Removed {count} deleted voice{'s' if count != 1 else ''} for good; {freed / 1e6:.1f} MB freed."

    def export_voice(self, name: str) -> str:
        return str(self.studio.export_voice(name))

    def import_voice(self, file: str, name: str | None = None, language: str = "Auto") -> dict:
        """Import a Voice Studio .zip, or a .pt voice file saved by the official Qwen3-TTS demo."""
        return self.studio.import_voice(file, name, language).summary()

    def load_voice(self, name: str):
        """Details of a voice for the Library tab: summary, reference audio, approved preview."""
        details = self.studio.voice_details(name)
        if details is None:
            return None, None, None
        return (details.summary, str(details.reference) if details.reference else None,
                str(details.preview) if details.preview else None)

    # -- layout ------------------------------------------------------------------------------
    def voice_choices(self) -> list[tuple[str, str]]:
        return [(REFERENCE_CHOICE, "")] + [(name, name) for name in self.studio.voice_names()]

    def build(self) -> gr.Blocks:
        with gr.Blocks(title="Voice Studio", delete_cache=(3600, 3600)) as demo:
            gr.Markdown("# Voice Studio\nClone a voice from a short clip with Qwen3-TTS.")
            status = gr.Markdown(self.studio.status(), elem_id="status")
            with gr.Tabs() as tabs:
                with gr.Tab("Reference", id="reference"):
                    reference = self._reference_layout()
                with gr.Tab("Preview", id="preview"):
                    preview = self._preview_layout()
                with gr.Tab("Compare", id="compare") as compare_tab:
                    compare = self._compare_layout()
                with gr.Tab("Library", id="library") as library_tab:
                    library = self._library_layout()
            self._wire_reference(reference, preview, tabs)
            self._wire_preview(preview, status)
            self._wire_library(library, preview, tabs, library_tab)
            self._wire_compare(compare, preview, compare_tab)
            demo.load(user_errors(self.status), outputs=status, api_name="status")
        return demo

    def _reference_layout(self) -> dict:
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
        with gr.Row():
            c["language"] = gr.Dropdown(list(LANGUAGES), value="Japanese", label="Spoken language",
                                        allow_custom_value=True)
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

    def _wire_reference(self, c: dict, preview: dict, tabs) -> None:
        studio = self.studio
        options = [c[k] for k in ("mono", "resample", "remove_dc", "trim_silence", "normalize", "denoise", "hum",
                                  "tail_ms")]

        def clean_clip(upload, start, end, *flags):
            result = studio.prepare_reference(upload, start or 0.0, end or 0.0, clean_options(*flags))
            steps = "\n".join(f"- {step}" for step in result.report.steps) or "- none switched on"
            text = f"**After cleaning:** {result.report.after.advice()}\n\n**Steps:**\n{steps}"
            return (str(studio.write_wav(result.raw, "before")), str(studio.write_wav(result.cleaned, "reference")),
                    text, "", None, "The audio changed: transcribe it again.")

        c["clean"].click(user_errors(clean_clip), inputs=[c["upload"], c["start"], c["end"], *options],
                         outputs=[c["before"], c["after"], c["report"], c["ref_text"], c["transcript"],
                                  c["detected"]], api_visibility="private")
        api_report = gr.JSON(visible=False)
        api_cleaned = gr.File(visible=False)
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

        def shown(result):
            text = result.transcript.text if result.transcript else gr.skip()
            transcript = result.transcript.to_dict() if result.transcript else None
            return (str(studio.write_wav(result.clip, "trimmed")), transcript, text, result.note,
                    f"**After trimming:** {result.report.advice()}")

        def suggest_clip(after, transcript):
            if not after:
                raise InvalidInput("Clean the clip first; the suggestion trims the cleaned clip.")
            return shown(studio.suggest_reference(after, transcript))

        def trim_clip(after, transcript, start, end):
            if not after:
                raise InvalidInput("Clean the clip first.")
            return shown(studio.trim_reference(after, transcript, start or 0.0, end or 0.0))

        outputs = [c["after"], c["transcript"], c["ref_text"], c["trim_note"], c["report"]]
        c["suggest"].click(user_errors(suggest_clip), inputs=[c["after"], c["transcript"]], outputs=outputs,
                           api_visibility="private")
        c["trim"].click(user_errors(trim_clip), inputs=[c["after"], c["transcript"], c["start"], c["end"]],
                        outputs=outputs, api_visibility="private")

        def use_clip(after, ref_text, upload):
            if not after:
                raise InvalidInput("Clean the clip first (Clean and check).")
            studio.approve_reference(after)
            return after, ref_text, "", upload, gr.Tabs(selected="preview")

        c["use"].click(user_errors(use_clip), inputs=[c["after"], c["ref_text"], c["upload"]],
                       outputs=[preview["reference"], preview["ref_text"], preview["voice"], preview["original"],
                                tabs],
                       api_visibility="private")

    def _preview_layout(self) -> dict:
        default = self.studio.library.default()
        p = {}
        with gr.Row():
            with gr.Column():
                p["engine"] = gr.Dropdown(self.engine_choices(), value=self.studio.engine.name, label="Engine",
                                          elem_id="preview-engine")
                p["engine_note"] = gr.Markdown(engine_note(self.studio.engine), elem_id="engine-note")
                # Custom values: voices saved after the page was built are valid too; the library checks names.
                p["voice"] = gr.Dropdown(self.voice_choices(), value="", label="Voice", allow_custom_value=True,
                                         info="A library voice, or the reference clip below (when none is "
                                              f"uploaded: the default voice{f', {default.name}' if default else ''})",
                                         elem_id="preview-voice")
                p["reference"] = gr.Audio(label="Reference clip", type="filepath", sources=["upload", "microphone"],
                                          elem_id="preview-reference")
                p["ref_text"] = gr.Textbox(label="Reference transcript (ref_text)", lines=2,
                                           placeholder="Exactly what is said in the reference clip")
                p["mode"] = gr.Radio(MODE_CHOICES, value="icl", label="Cloning mode")
            with gr.Column():
                p["text"] = gr.Textbox(label="Text to speak", lines=4,
                                       value="Hello! This is my cloned voice speaking English.")
                p["language"] = gr.Dropdown(list(self.studio.engine.capabilities.languages), value="English",
                                            label="Language", allow_custom_value=True, elem_id="preview-language")
                with gr.Accordion("Sampling", open=False):
                    p["temperature"] = gr.Slider(0, 2, value=0.9, step=0.05, label="Temperature (0 = greedy)")
                    p["top_p"] = gr.Slider(0.05, 1, value=1.0, step=0.05, label="Top-p")
                    p["top_k"] = gr.Slider(0, 200, value=50, step=1, label="Top-k")
                    p["repetition_penalty"] = gr.Slider(1, 2, value=1.05, step=0.01, label="Repetition penalty")
                    p["seed"] = gr.Number(value=-1, precision=0, label="Seed (-1 = random)")
                    p["max_frames"] = gr.Number(value=0, precision=0, label="Max frames per sentence (0 = from text)")
                    p["retries"] = gr.Number(value=0, precision=0, minimum=0, maximum=5,
                                             label="Retry a flagged take (runaway, silent, cut off, unintelligible) "
                                                   "up to this many times with the next seed")
                    p["takes"] = gr.Slider(1, MAX_TAKES, value=1, step=1, elem_id="preview-takes",
                                           label="Takes per one-shot (one batch, seeds seed, seed+1, ...; about the "
                                                 "cost of one)")
                with gr.Row():
                    p["stream"] = gr.Button("Stream", variant="primary")
                    p["synthesize"] = gr.Button("Synthesize (one shot)")
                    p["stop"] = gr.Button("Stop", variant="stop")
        # Gradio 6.17's player builds a WaveSurfer on mount inside a container that it only renders for
        # non-stream values, so the first chunk logs "Container not found" (harmless: HLS plays the
        # stream). Without the waveform, every later Stream plays too (gradio issue #13807).
        p["player"] = gr.Audio(label="Live", streaming=True, autoplay=True, interactive=False, elem_id="player",
                               waveform_options=gr.WaveformOptions(show_recording_waveform=False))
        # A file path and no format: as an input (saving the take) Gradio would otherwise decode it itself, unbounded.
        p["take"] = gr.Audio(label="Take", type="filepath", interactive=False, elem_id="take")
        p["summary"] = gr.Markdown(elem_id="take-summary")
        with gr.Row():
            p["takes_players"] = [gr.Audio(label=f"Take {n + 1}", type="numpy", interactive=False, visible=False,
                                           elem_id=f"preview-take-{n}") for n in range(MAX_TAKES)]
        # The raw upload behind a reference cleaned on the Reference tab; a direct upload here clears it.
        p["original"] = gr.State(None)
        return p

    def _wire_preview(self, p: dict, status) -> None:
        inputs = [p[k] for k in ("text", "language", "voice", "reference", "ref_text", "mode", "temperature",
                                 "top_p", "top_k", "repetition_penalty", "seed", "max_frames")]
        limit = self.settings.concurrency
        streamed = p["stream"].click(user_errors(self.preview_stream), inputs=inputs + [p["retries"], p["engine"]],
                                     outputs=[p["player"], p["take"], p["summary"]], api_visibility="private",
                                     concurrency_limit=limit)
        streamed.then(self.status, outputs=status, api_visibility="private")
        one_shot = p["synthesize"].click(user_errors(self.preview_takes),
                                         inputs=inputs + [p["retries"], p["takes"], p["engine"]],
                                         outputs=[p["take"], p["summary"], *p["takes_players"]],
                                         api_visibility="private", concurrency_limit=limit)
        one_shot.then(self.status, outputs=status, api_visibility="private")
        p["stop"].click(None, cancels=[streamed, one_shot])
        # Scripts: the same actions as named endpoints (hidden buttons; the visible ones above are private).
        api_take = gr.Audio(type="filepath", visible=False)
        api_summary = gr.Markdown(visible=False)
        gr.Button(visible=False).click(user_errors(self.synthesize), inputs=inputs + [p["retries"], p["engine"]],
                                       outputs=[api_take, api_summary], api_name="synthesize",
                                       concurrency_limit=limit)
        api_takes = gr.File(file_count="multiple", visible=False)
        api_details = gr.JSON(visible=False)
        gr.Button(visible=False).click(user_errors(self.synthesize_takes),
                                       inputs=inputs + [p["takes"], p["engine"]],
                                       outputs=[api_takes, api_details], api_name="synthesize_takes",
                                       concurrency_limit=limit)
        # A plain WAV output reaches gradio_client as one file per chunk.
        api_chunks = gr.Audio(type="numpy", format="wav", visible=False)
        gr.Button(visible=False).click(user_errors(self.stream), inputs=inputs + [p["engine"]], outputs=api_chunks,
                                       api_name="stream", concurrency_limit=limit)
        p["reference"].upload(lambda: None, outputs=p["original"], api_visibility="private")
        p["engine"].change(user_errors(self.engine_form), inputs=[p["engine"], p["language"], p["mode"]],
                           outputs=[p["language"], p["mode"], p["engine_note"]], api_visibility="private")

    def engine_choices(self) -> list[tuple[str, str]]:
        return [(self.studio.engine_for(name).label, name) for name in self.studio.engine_names()]

    def engine_form(self, name, language, mode):
        """Offer only what the chosen engine can do: its languages and cloning modes, and say what it is."""
        engine = self.studio.engine_for(name)
        caps = engine.capabilities
        languages = list(caps.languages)
        modes = [(MODE_NAMES.get(mode, mode), mode) for mode in caps.modes]
        language = language if language in languages else languages[0]
        mode = mode if mode in caps.modes else modes[0][1]
        return (gr.update(choices=languages, value=language), gr.update(choices=modes, value=mode),
                engine_note(engine))

    def _compare_layout(self) -> dict:
        gr.Markdown("The same line in several voices, or one voice in both cloning modes, side by side, each take "
                    "scored. ICL carries more of the reference's accent into other languages than x-vector only.")
        c = {"columns": []}
        with gr.Row():
            c["text"] = gr.Textbox(label="Text", value="Hello! This is my cloned voice speaking English.", lines=2,
                                   scale=3)
            c["language"] = gr.Dropdown(list(LANGUAGES), value="English", label="Language", allow_custom_value=True)
        with gr.Row():
            c["seed"] = gr.Number(value=0, precision=0, minimum=0, label="Seed (the same for every column)")
            c["takes"] = gr.Slider(1, 8, value=1, step=1, label="Takes per column (best of N)")
            c["max_frames"] = gr.Number(value=0, precision=0, label="Max frames per sentence (0 = from text)")
            c["save_name"] = gr.Textbox(label="Name for the reference clip, if you approve it")
        choices = [("(not used)", ""), REFERENCE_COLUMN] + self.studio.voice_names()
        with gr.Row():
            for index in range(MAX_COLUMNS):
                with gr.Column(min_width=200):
                    column = {
                        "source": gr.Dropdown(choices, value=REFERENCE_COLUMN if index == 0 else "",
                                              label=f"Column {index + 1}", allow_custom_value=True,
                                              elem_id=f"compare-source-{index}"),
                        "mode": gr.Radio(COLUMN_MODES, value="", label="Cloning mode"),
                        "engine": gr.Dropdown([("Default engine", "")] + self.engine_choices(), value="",
                                              label="Engine", elem_id=f"compare-engine-{index}"),
                        "take": gr.Audio(label="Best take", type="filepath", interactive=False,
                                         elem_id=f"compare-take-{index}"),
                        "picture": gr.Image(label="Waveform and spectrogram", type="filepath", interactive=False),
                        "scores": gr.Markdown(elem_id=f"compare-scores-{index}"),
                        "approve": gr.Button("Approve this take", elem_id=f"compare-approve-{index}"),
                    }
                    c["columns"].append(column)
        with gr.Row():
            c["run"] = gr.Button("Compare", variant="primary", elem_id="compare-run")
            c["stop"] = gr.Button("Stop", variant="stop")
        # One live player: columns are generated one after another, each plays here as it streams. (A streaming
        # output that receives nothing makes Gradio 6.17 fail at the end of the event, so no idle players.)
        c["live"] = gr.Audio(label="Live (the column being generated)", streaming=True, autoplay=True,
                             interactive=False, waveform_options=gr.WaveformOptions(show_recording_waveform=False))
        c["table"] = gr.Markdown(elem_id="compare-table")
        gr.Markdown(RANKING)
        c["message"] = gr.Markdown(elem_id="compare-message")
        c["state"] = gr.State([])
        return c

    def _wire_compare(self, c: dict, preview: dict, compare_tab) -> None:
        studio = self.studio
        columns = c["columns"]

        def refreshed(*sources):
            choices = [("(not used)", ""), REFERENCE_COLUMN] + studio.voice_names()
            return [gr.update(choices=choices, value=value) for value in sources]

        compare_tab.select(refreshed, inputs=[col["source"] for col in columns],
                           outputs=[col["source"] for col in columns], api_visibility="private")
        per_column = ["take", "picture", "scores"]
        outputs = [col[k] for col in columns for k in per_column] + [c["live"], c["table"], c["state"]]

        def blank():
            return [gr.skip()] * len(outputs)

        def run(text, language, seed, takes, max_frames, reference, ref_text, *picked):
            sources, modes = picked[:MAX_COLUMNS], picked[MAX_COLUMNS:2 * MAX_COLUMNS]
            engines = picked[2 * MAX_COLUMNS:]
            chosen = []
            for index, (source, mode, engine) in enumerate(zip(sources, modes, engines)):
                if not source:
                    continue
                if source == REFERENCE_COLUMN:
                    if not reference:
                        raise InvalidInput("A column uses the reference clip: upload one on the Preview tab first.")
                    chosen.append((index, Column(reference=reference, ref_text=ref_text, mode=mode or None,
                                                 engine=engine or None)))
                else:
                    chosen.append((index, Column(voice=source, mode=mode or None, engine=engine or None)))
            if not chosen:
                raise InvalidInput("Choose at least one column to compare (one column with several takes "
                                   "is best of N).")
            request = self._compare_request(text, language, [col for _, col in chosen], seed, takes, max_frames)
            if not studio.scorer.loaded:
                update = blank()
                update[-2] = "Scores load the speaker encoder and Whisper on first use; the first comparison waits " \
                             "for them once."
                yield update
            state = []
            for event in studio.compare_events(request):
                update = blank()
                if event[0] == "chunk":
                    if not len(event[3]):
                        continue
                    update[-3] = to_gradio_audio(event[3], event[4])
                elif event[0] == "done":
                    for position, result in enumerate(event[1]):
                        index = chosen[position][0]
                        best = result.best
                        clip = audio.Clip(best.take.samples, best.take.rate, "take")
                        take_path = studio.write_wav(clip, "compare")
                        picture_path = studio.files.path("picture", ".png")
                        picture(clip).save(picture_path)
                        base = index * len(per_column)
                        update[base:base + 3] = [str(take_path), str(picture_path), column_markdown(result)]
                        state.append(dict(index=index, voice=result.column.voice, mode=result.column.mode,
                                          engine=result.column.engine or studio.engine.name,
                                          take=str(take_path), seed=best.take.seed, text=request.text,
                                          language=request.language, takes=request.takes,
                                          **sampling_record(request.sampling)))
                    update[-2], update[-1] = score_table(event[1]), state
                yield update

        event = c["run"].click(user_errors(run),
                               inputs=[c["text"], c["language"], c["seed"], c["takes"], c["max_frames"],
                                       preview["reference"], preview["ref_text"],
                                       *[col["source"] for col in columns], *[col["mode"] for col in columns],
                                       *[col["engine"] for col in columns]],
                               outputs=outputs, api_visibility="private",
                               concurrency_limit=self.settings.concurrency)
        c["stop"].click(None, cancels=[event])

        for index, column in enumerate(columns):
            def approve(state, name, reference, ref_text, language, index=index):
                taken = next((s for s in state if s["index"] == index), None)
                if taken is None:
                    raise InvalidInput("Run a comparison first; then approve the take you like.")
                details = {k: v for k, v in taken.items() if k not in ("index", "voice", "take", "mode")}
                details["mode"] = taken["mode"] or ""
                if taken["voice"]:
                    voice = studio.approve(taken["voice"], taken["take"], details)
                else:
                    if not (name or "").strip():
                        raise InvalidInput("Name the reference clip (above the columns) to save it with this take.")
                    new = NewVoice(name=name, reference=reference, ref_text=ref_text, language="Auto",
                                   mode=taken["mode"] or "icl")
                    voice = studio.approve(new, taken["take"], details)
                return f"Approved seed {details['seed']} as the preview of {voice.name!r}."

            column["approve"].click(user_errors(approve),
                                    inputs=[c["state"], c["save_name"], preview["reference"], preview["ref_text"],
                                            c["language"]],
                                    outputs=c["message"], api_visibility="private")

        # Scripts: compare and score_take as named endpoints.
        api_voices = gr.JSON(visible=False)
        api_reference = gr.File(visible=False)
        api_scores = gr.JSON(visible=False)
        api_files = gr.File(file_count="multiple", visible=False)
        gr.Button(visible=False).click(
            user_errors(self.compare),
            inputs=[c["text"], c["language"], api_voices, api_reference, preview["ref_text"], c["seed"], c["takes"],
                    c["max_frames"]],
            outputs=[api_scores, api_files], api_name="compare", concurrency_limit=self.settings.concurrency)
        api_take = gr.File(visible=False)
        api_take_reference = gr.File(visible=False)
        gr.Button(visible=False).click(user_errors(self.score_take),
                                       inputs=[api_take, api_take_reference, c["text"], c["language"]],
                                       outputs=api_scores, api_name="score_take")

    def _library_layout(self) -> dict:
        voices = self.studio.library.voices()
        w = {}
        with gr.Row():
            w["query"] = gr.Textbox(label="Search by name, tag or language", scale=3)
            w["refresh"] = gr.Button("Refresh", scale=1)
        w["table"] = gr.Dataframe(voice_rows(voices), headers=VOICE_COLUMNS, interactive=False, label="Voices",
                                  elem_id="voice-table")
        with gr.Row():
            with gr.Column():
                w["selected"] = gr.Dropdown([v.name for v in voices], value=None, label="Voice",
                                            elem_id="library-voice", allow_custom_value=True)
                w["details"] = gr.JSON(label="Details")
                w["reference"] = gr.Audio(label="Reference", type="filepath", interactive=False)
                w["preview"] = gr.Audio(label="Approved preview", type="filepath", interactive=False)
            with gr.Column():
                with gr.Row():
                    w["use"] = gr.Button("Load into Preview", variant="primary")
                    w["make_default"] = gr.Button("Set as default")
                w["new_name"] = gr.Textbox(label="New name (for Rename / Duplicate)")
                with gr.Row():
                    w["rename"] = gr.Button("Rename")
                    w["duplicate"] = gr.Button("Duplicate")
                with gr.Row():
                    w["delete"] = gr.Button("Delete", variant="stop")
                    w["undo"] = gr.Button("Undo delete")
                    w["empty_trash"] = gr.Button("Empty trash")
                w["export"] = gr.Button("Export as .zip")
                w["exported"] = gr.File(label="Exported voice", interactive=False)
                w["message"] = gr.Markdown("" if voices else EMPTY_LIBRARY, elem_id="library-message")
        with gr.Accordion("Save the current reference as a voice", open=True):
            with gr.Row():
                w["save_name"] = gr.Textbox(label="Name", elem_id="save-name")
                w["save_language"] = gr.Dropdown(list(LANGUAGES), value="Japanese", label="Reference language",
                                                 allow_custom_value=True)
            with gr.Row():
                w["save_notes"] = gr.Textbox(label="Notes")
                w["save_tags"] = gr.Textbox(label="Tags (comma separated)")
            w["with_take"] = gr.Checkbox(label="Keep the last Preview take as the approved preview", value=False)
            w["save"] = gr.Button("Save voice", variant="primary")
        with gr.Accordion("Import a voice (.zip from Voice Studio, .pt from the Qwen3-TTS demo)", open=False):
            w["import_file"] = gr.File(label="Voice file", file_types=[".zip", ".pt"], type="filepath")
            w["import_name"] = gr.Textbox(label="Name (for .pt files)")
            w["import_language"] = gr.Dropdown(list(LANGUAGES), value="Auto", label="Language (for .pt files)",
                                               allow_custom_value=True)
            w["import"] = gr.Button("Import")
        w["result"] = gr.JSON(visible=False)
        return w

    def _wire_library(self, w: dict, preview: dict, tabs, library_tab) -> None:
        details = [w["details"], w["reference"], w["preview"]]
        listing = [w["table"], w["selected"], preview["voice"], w["message"]]

        def refreshed(query_text="", keep=None):
            names = self.studio.voice_names()
            choice = keep if keep in names else None
            rows = voice_rows(self.studio.library.list(query_text or ""))
            return (gr.update(value=rows), gr.update(choices=names, value=choice),
                    gr.update(choices=self.voice_choices()), EMPTY_LIBRARY if not names else gr.skip())

        def after(event, keep_from=None):
            event.then(refreshed, inputs=[w["query"], keep_from or w["selected"]], outputs=listing,
                       api_visibility="private")

        for trigger in (w["refresh"].click, w["query"].submit):
            trigger(refreshed, inputs=w["query"], outputs=listing, api_visibility="private")
        listed = gr.JSON(visible=False)
        gr.Button(visible=False).click(user_errors(self.list_voices), inputs=w["query"], outputs=listed,
                                       api_name="list_voices")
        w["selected"].change(user_errors(self.load_voice), inputs=w["selected"], outputs=details,
                             api_name="load_voice")
        library_tab.select(refreshed, inputs=[w["query"], w["selected"]], outputs=listing,
                           api_visibility="private").then(
            user_errors(self.load_voice), inputs=w["selected"], outputs=details, api_visibility="private")

        def save_from_preview(name, reference, ref_text, language, mode, notes, tags, keep, take, original):
            voice = self.save_voice(name, reference, ref_text, language, mode, notes, tags,
                                    take if keep else None, original)
            return voice, f"Saved {voice['name']!r}.", gr.update(value=voice["name"])

        saved = w["save"].click(user_errors(save_from_preview),
                                inputs=[w["save_name"], preview["reference"], preview["ref_text"],
                                        w["save_language"], preview["mode"], w["save_notes"], w["save_tags"],
                                        w["with_take"], preview["take"], preview["original"]],
                                outputs=[w["result"], w["message"], w["save_name"]], api_visibility="private")
        after(saved, w["save_name"])
        # The API form of saving: upload + fields, no dependency on the Preview tab.
        api_reference = gr.File(visible=False)
        gr.Button(visible=False).click(
            user_errors(self.save_voice),
            inputs=[w["save_name"], api_reference, preview["ref_text"], w["save_language"], preview["mode"],
                    w["save_notes"], w["save_tags"]],
            outputs=w["result"], api_name="save_voice")

        def confirm(template):
            return lambda summary: template.format(**summary)

        def action(button, fn, inputs, api_name, template=None, keep_from=None):
            event = button.click(user_errors(fn), inputs=inputs,
                                 outputs=w["result"] if template else w["message"], api_name=api_name)
            if template:
                event.then(confirm(template), inputs=w["result"], outputs=w["message"], api_visibility="private")
            after(event, keep_from)

        action(w["rename"], self.rename_voice, [w["selected"], w["new_name"]], "rename_voice", "Renamed to {name!r}.",
               w["new_name"])
        action(w["duplicate"], self.duplicate_voice, [w["selected"], w["new_name"]], "duplicate_voice",
               "Duplicated as {name!r}.", w["new_name"])
        action(w["delete"], self.delete_voice, w["selected"], "delete_voice")
        restore_name = gr.Textbox(visible=False)  # empty: the most recently deleted voice
        action(w["undo"], self.restore_voice, restore_name, "restore_voice", "Restored {name!r}.")
        action(w["empty_trash"], self.empty_trash, None, "empty_trash")
        action(w["make_default"], self.set_default_voice, w["selected"], "set_default_voice",
               "{name!r} is now the default voice.")
        action(w["import"], self.import_voice, [w["import_file"], w["import_name"], w["import_language"]],
               "import_voice", "Imported {name!r}.")
        w["export"].click(user_errors(self.export_voice), inputs=w["selected"], outputs=w["exported"],
                          api_name="export_voice")

        def use_voice(name):
            if not name:
                raise InvalidInput("Pick a voice first.")
            return gr.update(value=name), gr.Tabs(selected="preview")

        w["use"].click(user_errors(use_voice), inputs=w["selected"], outputs=[preview["voice"], tabs],
                       api_visibility="private")


def build_app(settings: Settings, engine: Engine | None = None, transcriber: Transcriber | None = None,
              studio: Studio | None = None) -> gr.Blocks:
    return StudioUI(studio or Studio(settings, engine, transcriber=transcriber)).build()
