"""The studio's rules, one method per action, shared by every door.

The Gradio UI, gradio_client endpoints and any HTTP route call a `Studio`; it
takes and returns core types (clips, transcripts, takes, voices), never Gradio
or HTTP objects. The rules live here once: which prompt a request uses (a
library voice, else the uploaded reference, else the default voice), that an
error-level quality issue blocks a reference, that audio and transcript are
trimmed together, how a voice is saved (with or without a loaded model, with
its original upload), and how long temporary files live.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

from . import archive, audio, streaming
from .config import FRAME_RATE, Settings
from .engines import MODE_NAMES as MODE_NAMES  # for the doors: they import the core, never an engine
from .engines import (MAX_TAKES, Engine, Sampling, VoicePrompt, check_ref_text, create_engine, engine_names,
                      sentence_budget)
from .engines.browser import BrowserEngine, BrowserModel, browser_adapter, browser_names
from .errors import DiskFull, InvalidInput, LibraryBusy, ModelUnavailable, VoiceNotFound
from .files import TempFiles
from .history import History, RecordedStream, TakeRecord
from .languages import normalise_language
from .library import Library, Voice
from .quality import Scorer, Scores
from .text import check_script, split_sentences, validate_text
from .transcribe import Transcriber, Transcript, suggest_span

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SpeakRequest:
    """What to say and in whose voice, as every door receives it."""

    text: str
    language: str = "English"
    voice: str | None = None  # a library voice by name
    reference: str | Path | None = None  # else an uploaded clip ...
    ref_text: str | None = None  # ... with its transcript (ICL mode)
    mode: str | None = None  # for an uploaded reference; None: the engine's own way of cloning
    sampling: Sampling = field(default_factory=Sampling)
    voice_mode: str | None = None  # hear a library voice in another cloning mode
    engine: str | None = None  # None: the default engine (--engine)


@dataclass(frozen=True)
class NewVoice:
    """A voice to save: the reference clip (a file) and what is known about it."""

    name: str
    reference: str | Path | None
    ref_text: str | None = ""
    language: str = "Japanese"
    mode: str = "icl"
    notes: str | None = ""
    tags: str | list[str] | None = None
    preview: audio.Clip | None = None  # an approved take
    original: str | Path | None = None  # the raw upload the reference was cleaned from


MAX_COLUMNS = 4


def seconds_of_frames(frames: int | float | None) -> float | None:
    """A length the doors take in 80 ms units ("frames", as the UI and API always counted), in seconds."""
    return None if not frames or frames <= 0 else float(frames) / FRAME_RATE


@dataclass(frozen=True)
class Column:
    """One column of a comparison: a library voice, or an uploaded reference; optionally in another mode."""

    voice: str | None = None
    reference: str | Path | None = None
    ref_text: str | None = None
    mode: str | None = None  # None: the voice's own mode (ICL for a reference)
    engine: str | None = None  # None: the default engine

    def label(self) -> str:
        name = self.voice or "Reference clip"
        details = ", ".join(filter(None, [self.engine, self.mode]))
        return f"{name} ({details})" if details else name


@dataclass(frozen=True)
class CompareRequest:
    text: str
    language: str = "English"
    columns: tuple[Column, ...] = ()
    seed: int = 0  # the same for every column; take k of a column uses seed + k
    takes: int = 1  # per column, ranked by the combined score
    sampling: Sampling = field(default_factory=Sampling)


@dataclass
class ScoredTake:
    take: streaming.Take
    scores: Scores


@dataclass
class ColumnResult:
    column: Column
    takes: list[ScoredTake]  # best first

    @property
    def best(self) -> ScoredTake:
        return self.takes[0]


@dataclass
class CleanedReference:
    raw: audio.Clip  # the upload after trimming, before cleaning
    cleaned: audio.Clip
    report: audio.CleanReport


@dataclass
class TrimmedReference:
    clip: audio.Clip
    transcript: Transcript | None
    note: str
    report: audio.QualityReport


@dataclass
class SentencePlan:
    """A text as an engine would speak it, for a loop that runs elsewhere (the browser page)."""

    language: str
    sentences: list[tuple[str, int]]  # each sentence and its limit in the engine's steps
    budget_steps: int  # the whole request's limit (--max-request-seconds) in the engine's steps


@dataclass
class VoiceDetails:
    summary: dict
    reference: Path | None
    preview: Path | None


class Studio:
    """One engine, one transcriber, one library, shared by every door and every request."""

    def __init__(self, settings: Settings, engine: Engine | None = None, library: Library | None = None,
                 transcriber: Transcriber | None = None):
        self.settings = settings
        self.engine = engine or create_engine(settings, settings.engine)  # the default engine
        self.engines = {self.engine.name: self.engine}  # others are created when first asked for
        self._engines_lock = threading.Lock()
        self.library = library or Library(settings.voices_dir, settings.max_upload_bytes,
                                          settings.max_reference_seconds)
        self.transcriber = transcriber or Transcriber(settings.whisper_model, settings.device)
        self.files = TempFiles()
        self.scorer = Scorer(self.transcriber, settings.device)
        self.library.sweep()  # what a killed save left behind, and trash beyond its limit
        self.history = History(Path(settings.voices_dir) / ".history")  # every take, beside the library

    def status(self) -> str:
        """Whether the TTS model is loaded, and where (device, dtype and why)."""
        return self.engine.status()

    def write_wav(self, clip: audio.Clip, stem: str) -> Path:
        """A temporary WAV for a door to serve; swept after an hour."""
        return audio.write_wav(clip.samples, clip.rate, self.files.path(stem, ".wav"))

    # -- references --------------------------------------------------------------------------
    def reference_clip(self, reference: str | Path | None, span: tuple[float, float | None] | None = None
                       ) -> audio.Clip:
        """An uploaded clip, decoded within the upload and reference limits (only `span` of it, when given)."""
        if not reference:
            raise InvalidInput("Upload or record a reference clip of the voice to clone.")
        return audio.load(reference, max_bytes=self.settings.max_upload_bytes,
                          max_seconds=self.settings.max_reference_seconds, span=span)

    def prepare_reference(self, reference, start: float = 0.0, end: float = 0.0,
                          options: audio.CleanOptions = audio.CleanOptions()) -> CleanedReference:
        """Trim an upload to [start, end) (0 = its end), clean it and assess both versions."""
        clip = self.reference_clip(reference, (start or 0.0, end or None) if start or end else None)
        cleaned, report = audio.clean(clip, options)
        return CleanedReference(clip, cleaned, report)

    def transcribe(self, reference, language: str | None = "Japanese", progress: Progress | None = None
                   ) -> Transcript:
        """Whisper transcript with the detected language and word timestamps."""
        clip = self.reference_clip(reference)
        return self.transcriber.transcribe(clip, normalise_language(language), progress=progress)

    def trim_reference(self, reference, transcript: Transcript | dict | None, start: float, end: float
                       ) -> TrimmedReference:
        """Cut a clip and its transcript at the same place, so ref_text always matches the audio."""
        clip = self.reference_clip(reference)
        end = end or clip.duration
        trimmed = audio.trim(clip, start, end)
        report = audio.assess(trimmed)
        if not transcript:
            return TrimmedReference(trimmed, None, "", report)
        words = transcript if isinstance(transcript, Transcript) else Transcript.from_dict(transcript)
        cut = words.cut_words(start, end)
        note = ""
        if cut:
            note = ("The trim cuts through " + ", ".join(repr(w.text.strip()) for w in cut) +
                    "; words are kept in the text when most of them is kept in the audio.")
        return TrimmedReference(trimmed, words.slice(start, end), note, report)

    def suggest_reference(self, reference, transcript: Transcript | dict | None) -> TrimmedReference:
        """Trim a transcribed clip to the suggested 3-15 s span at word or sentence boundaries."""
        if not transcript:
            raise InvalidInput("Transcribe the clip first: the suggestion uses its word timestamps.")
        words = transcript if isinstance(transcript, Transcript) else Transcript.from_dict(transcript)
        clip = self.reference_clip(reference)
        span = suggest_span(words, clip.duration)
        result = self.trim_reference(reference, words, span.start, span.end)
        result.note = " ".join(filter(None, [f"Kept {span.start:.2f}-{span.end:.2f} s.", span.note, result.note]))
        return result

    def approve_reference(self, reference) -> audio.QualityReport:
        """The clip's quality report; an error-level issue blocks using it for cloning."""
        report = audio.assess(self.reference_clip(reference))
        if not report.ok:
            problems = " ".join(i.message for i in report.issues if i.level == "error")
            raise InvalidInput(f"This reference cannot be used yet: {problems}")
        return report

    # -- synthesis ---------------------------------------------------------------------------
    def engine_names(self) -> tuple[str, ...]:
        return engine_names()

    def engine_for(self, name: str | None) -> Engine:
        """The engine called `name` (None or empty: the default one), created once, loaded on first use."""
        if not name or name == self.engine.name:
            return self.engine
        with self._engines_lock:
            if name not in self.engines:
                self.engines[name] = create_engine(self.settings, name)
            return self.engines[name]

    def voice_prompt(self, voice: Voice, engine: Engine) -> VoicePrompt:
        """A saved voice heard through `engine`: its stored prompt for that model, else built once from the reference.

        A prompt that cannot be stored (a full disk, a read-only library) is used all the same.
        """
        data = self.library.prompt(voice, engine.fingerprint)
        if data is not None:
            try:
                return engine.check_prompt(data, voice.mode, voice.ref_text)
            except InvalidInput as error:
                raise InvalidInput(f"Voice {voice.name!r}: {error}") from error
        if not voice.has_reference:
            raise InvalidInput(f"Voice {voice.name!r} was imported as a prompt for another model and has no "
                               "reference audio to rebuild it from.")
        prompt = engine.make_prompt(self.library.reference(voice), voice.ref_text, engine.voice_mode(voice.mode))
        try:
            self.library.keep_prompt(voice, prompt.fingerprint, engine.prompt_bytes(prompt))
        except (OSError, LibraryBusy, DiskFull) as error:  # a cache: speaking goes on, rebuilt next time
            log.warning("voice %r: its prompt could not be stored (%s); it is rebuilt next time", voice.name,
                        getattr(error, "strerror", None) or error)
        return prompt

    def prompt_for(self, voice: str | None, reference=None, ref_text: str | None = None, mode: str | None = None,
                   voice_mode: str | None = None, engine: Engine | None = None) -> VoicePrompt:
        """A library voice by name; else the uploaded reference; else the library's default voice.

        `voice_mode` hears a library voice in another cloning mode (built from its reference).
        Every engine hears the same saved voice: its prompt is stored per engine model.
        """
        engine = engine or self.engine
        if voice and voice.strip():
            return self._saved_prompt(self.library.get(voice), voice_mode, engine)
        if reference:
            return engine.make_prompt(self.reference_clip(reference), ref_text, engine.mode_for(mode))
        return self._saved_prompt(self.default_voice(), voice_mode, engine)

    def _saved_prompt(self, saved: Voice, voice_mode: str | None, engine: Engine) -> VoicePrompt:
        if voice_mode:
            wanted = engine.mode_for(voice_mode)
            if wanted != engine.voice_mode(saved.mode):
                return engine.make_prompt(self.library.reference(saved), saved.ref_text, wanted)
        return self.voice_prompt(saved, engine)

    def default_voice(self) -> Voice:
        default = self.library.default()
        if default is None:
            raise VoiceNotFound("The library has no default voice: choose a voice from the library (\"voice\") "
                                "or upload a reference clip of the voice to clone.")
        return default

    def speech(self, request: SpeakRequest, progress: Progress | None = None) -> tuple[Engine, streaming.Speech]:
        """The engine and the checked request: every door's text, language, mode and sampling are checked
        here, once, cheap checks first, so a typo is reported before any model work."""
        engine = self.engine_for(request.engine)
        text = validate_text(request.text, self.settings.max_text_chars)
        language = engine.language_for(request.language)
        check_script(text, engine.languages(), engine.label)
        request.sampling.validate()
        if request.voice_mode:
            engine.mode_for(request.voice_mode)
        if request.reference and not (request.voice or "").strip():
            check_ref_text(request.ref_text, engine.mode_for(request.mode), self.settings.max_ref_text_chars)
        engine.load(progress=progress)
        prompt = self.prompt_for(request.voice, request.reference, request.ref_text, request.mode, request.voice_mode,
                                 engine)
        return engine, streaming.Speech(text, language, prompt, request.sampling)

    # -- engines that run in the listener's browser ----------------------------------------------
    def browser_names(self) -> tuple[str, ...]:
        return browser_names()

    def browser_adapter(self, name: str) -> BrowserEngine:
        return browser_adapter(name)

    def browser_model(self, name: str) -> BrowserModel:
        """The graphs the page runs for engine `name`, checked against the server engine's model."""
        return browser_adapter(name).model(self.engine_for(name), self.settings)

    def sentence_plan(self, name: str, text, language: str | None, max_seconds: float | None) -> SentencePlan:
        """The sentences of `text` and their limits in engine `name`'s steps, checked as any request is."""
        engine = self.engine_for(name)
        text = validate_text(text, self.settings.max_text_chars)
        language = engine.language_for(language)
        Sampling(max_seconds=max_seconds).validate()
        engine.load()
        step = engine.capabilities.step_seconds
        budget = self.settings.max_request_seconds

        def steps(seconds: float) -> int:
            return max(1, int(seconds / step + 1e-6))

        return SentencePlan(language, [(s, steps(min(max_seconds or sentence_budget(s), budget)))
                                       for s in split_sentences(text, language)], steps(budget))

    def budget(self) -> streaming.Budget:
        return streaming.Budget(self.settings.max_request_seconds, self.settings.max_generation_seconds)

    def stream(self, request: SpeakRequest, heartbeat: bool = False, progress: Progress | None = None,
               takes: int = 1, source: str = "stream") -> RecordedStream:
        """The speech pipeline for `request`: iterate it for chunks while the model generates, then read `.takes`.

        Every take it finishes goes into the take history (`source` says which door made it).
        """
        if isinstance(takes, bool) or not isinstance(takes, int) or not 1 <= takes <= MAX_TAKES:
            raise InvalidInput(f"Takes must be a whole number from 1 to {MAX_TAKES}.")
        engine, speech = self.speech(request, progress)
        return RecordedStream(streaming.Stream(engine, speech, self.budget(), takes, heartbeat),
                              lambda take: self.remember(request, engine, take, source))

    def synthesize(self, request: SpeakRequest, should_stop: Callable[[], bool] | None = None,
                   progress: Progress | None = None) -> streaming.Take:
        """The whole take in one go: the stream, collected. `should_stop` is asked after every engine step."""
        return self.synthesize_takes(request, 1, should_stop, progress)[0]

    def synthesize_takes(self, request: SpeakRequest, takes: int, should_stop: Callable[[], bool] | None = None,
                         progress: Progress | None = None) -> list[streaming.Take]:
        """`takes` takes of one line generated together (seeds seed, seed+1, ...), to pick from."""
        return self.stream(request, progress=progress, takes=takes,
                           source="one-shot" if takes == 1 else "takes").collect(should_stop)

    def speaker(self, request: SpeakRequest) -> str:
        """Who a request is heard as: its library voice, the reference clip, or the default voice it fell back to."""
        if request.voice and request.voice.strip():
            return request.voice.strip()
        if request.reference:
            return "the reference clip"
        default = self.library.default()
        return f"{default.name} (the default voice: no voice or reference clip was given)" if default else "none"

    def remember(self, request: SpeakRequest, engine: Engine, take: streaming.Take, source: str,
                 scores: dict | None = None) -> TakeRecord | None:
        """Keep a finished take in the history; a full disk costs the history entry, never the take."""
        voice = (request.voice or "").strip()
        try:
            mode = request.voice_mode or (self.library.get(voice).mode if voice else request.mode)
            return self.history.add(
                take.samples, take.rate, source=source, text=request.text, language=request.language,
                voice=self.speaker(request), voice_name=voice, engine=engine.name, mode=mode, seed=take.seed,
                sampling={k: v for k, v in vars(request.sampling).items() if k != "seed"},
                duration=round(take.duration, 3), time_to_first_audio=round(take.time_to_first_audio, 3),
                total_time=round(take.total_time, 3), flags=list(take.flags), scores=scores)
        except Exception:  # noqa: BLE001 - the take itself is fine; only its history entry is lost
            log.exception("could not keep a take in the history")
            return None

    # -- quality -----------------------------------------------------------------------------
    def score_take(self, take, reference=None, text: str = "", language: str = "Auto",
                   progress: Progress | None = None) -> Scores:
        """Scores for any take (a file or a clip), against an optional reference clip or file."""
        text = validate_text(text, self.settings.max_text_chars)
        clip = take if isinstance(take, audio.Clip) else self.take_clip(take)
        ref = None
        if reference is not None:
            ref = reference if isinstance(reference, audio.Clip) else self.reference_clip(reference)
        return self.scorer.score(clip, text, normalise_language(language), ref, progress=progress)

    def _score(self, take: streaming.Take, text: str, language: str, reference: audio.Clip | None,
               progress: Progress | None = None) -> Scores:
        cut_off = any("length limit" in flag for flag in take.flags)
        clip = audio.Clip(take.samples, take.rate, "take")
        return self.scorer.score(clip, text, language, reference, cut_off=cut_off,
                                 time_to_first_audio=round(take.time_to_first_audio, 3),
                                 total_time=take.total_time, progress=progress)

    def retry_flagged(self, request: SpeakRequest, take: streaming.Take, retries: int,
                      should_stop: Callable[[], bool] | None = None) -> tuple[streaming.Take, list[str]]:
        """Regenerate a flagged take (runaway, silent, cut off, unintelligible) with the next seed, up to `retries`.

        Returns the take kept and what happened, one line per attempt.
        """
        if not 0 <= retries <= 5:
            raise InvalidInput("Retries must be between 0 and 5.")
        if retries == 0:
            return take, []  # nothing to retry: no scoring, no Whisper
        report = []
        language = normalise_language(request.language)
        for attempt in range(retries + 1):
            scores = self._score(take, request.text, language, None)
            problems = "; ".join(scores.flags) or f"error rate {scores.error_rate:.0%}"
            if not scores.failed:
                if attempt:
                    report.append(f"Seed {take.seed}: passed.")
                return take, report
            if attempt == retries:
                report.append(f"Seed {take.seed}: {problems}; no retries left.")
                return take, report
            report.append(f"Seed {take.seed}: {problems}; retrying with seed {take.seed + 1}.")
            sampling = replace(request.sampling, seed=(take.seed + 1) % 2**32)
            take = self.synthesize(replace(request, sampling=sampling), should_stop=should_stop)
        return take, report

    def check_compare(self, request: CompareRequest) -> tuple[str, str, list[Engine]]:
        """The cheap checks of a comparison (text, columns, takes, seed, sampling, each engine's script), with
        nothing loaded: the text, the language and each column's engine."""
        text = validate_text(request.text, self.settings.max_text_chars)
        language = normalise_language(request.language)
        if not 1 <= len(request.columns) <= MAX_COLUMNS:
            raise InvalidInput(f"Compare 1 to {MAX_COLUMNS} columns.")
        if not 1 <= request.takes <= MAX_TAKES:
            raise InvalidInput(f"Takes per column must be between 1 and {MAX_TAKES}.")
        if not 0 <= request.seed < 2**32:
            raise InvalidInput("Seed must be a whole number from 0 to 4294967295.")
        request.sampling.validate()
        engines = [self.engine_for(column.engine) for column in request.columns]
        for engine in engines:
            engine.language_for(language)
            check_script(text, engine.languages(), engine.label)
        return text, language, engines

    def compare_events(self, request: CompareRequest) -> Iterator[tuple]:
        """Generate and score every column, yielding as it goes.

        Events: ("chunk", column, take_number, samples, sample_rate) while a take streams, ("spoken", column,
        take_number, Take) when its audio is complete (scoring comes next), ("scored", column, ScoredTake)
        after each take, and ("done", [ColumnResult, ...]) at the end. Every column is checked (voice,
        reference, mode) before anything is generated. Each column's takes are one request, and the
        columns of a batching engine speak at once; events still come column by column and take by
        take, the first take of a column live.
        """
        text, language, engines = self.check_compare(request)
        languages = [engine.language_for(language) for engine in engines]
        for engine in engines:
            engine.load()
        prompts = [self._column_prompt(column, engine) for column, engine in zip(request.columns, engines)]
        references = [self._column_reference(column) for column in request.columns]
        sampling = replace(request.sampling, seed=request.seed)
        streams = [streaming.Stream(engine, streaming.Speech(text, spoken, prompt, sampling), self.budget(),
                                    takes=request.takes)
                   for engine, spoken, prompt in zip(engines, languages, prompts)]
        results = []
        later: list[list] = [[] for _ in range(request.takes)]  # chunks of takes 1.. while take 0 plays
        for index, chunk in streaming.Together(streams):
            stream = streams[index]
            if chunk is not None:
                if chunk.take == 0:
                    yield "chunk", index, 0, chunk.samples, stream.rate
                else:
                    later[chunk.take].append(chunk.samples)
                continue
            scored = []
            for number, made in enumerate(stream.takes):
                for samples in later[number]:
                    yield "chunk", index, number, samples, stream.rate
                later[number] = []
                yield "spoken", index, number, made
                take = ScoredTake(made, self._score(made, text, language, references[index]))
                scored.append(take)
                column = request.columns[index]
                self.remember(SpeakRequest(text, language, column.voice, column.reference, column.ref_text,
                                           column.mode or None, replace(sampling, seed=made.seed), column.mode,
                                           column.engine), engines[index], made, "compare", take.scores.to_dict())
                yield "scored", index, take
            results.append(ColumnResult(request.columns[index],
                                        sorted(scored, key=lambda t: t.scores.combined, reverse=True)))
        yield "done", results

    def compare(self, request: CompareRequest) -> list[ColumnResult]:
        """Every column's takes, generated and scored, best first."""
        for event in self.compare_events(request):
            if event[0] == "done":
                return event[1]
        raise AssertionError("compare ended without a result")

    def _column_prompt(self, column: Column, engine: Engine) -> VoicePrompt:
        if column.voice:
            return self.prompt_for(column.voice, voice_mode=column.mode, engine=engine)
        if not column.reference:
            raise InvalidInput("Each column needs a library voice or a reference clip.")
        return self.prompt_for(None, column.reference, column.ref_text, column.mode or None, engine=engine)

    def _column_reference(self, column: Column) -> audio.Clip | None:
        if column.voice:
            voice = self.library.get(column.voice)
            return self.library.reference(voice) if self.library.reference_path(voice) else None
        return self.reference_clip(column.reference)

    def approve(self, voice: str | NewVoice, take, details: dict) -> Voice:
        """Keep a take as a voice's approved preview with how it was made; an unsaved reference is saved first."""
        clip = take if isinstance(take, audio.Clip) else self.take_clip(take)
        if isinstance(voice, NewVoice):
            voice = self.save_voice(voice).name
        return self.library.approve(voice, (clip.samples, clip.rate), details)

    # -- library -----------------------------------------------------------------------------
    def list_voices(self, query: str | None = None) -> list[dict]:
        """Voices whose name, tag or language contains `query` (all when empty), marking the default."""
        default = self.library.default()
        return [dict(v.summary(), default=default is not None and v.folder == default.folder)
                for v in self.library.list(query or "")]

    def save_voice(self, new: NewVoice) -> Voice:
        """Save a reference clip (stored at 24 kHz mono) with its prompt when the model can make one.

        Without a loadable model the voice is saved anyway; its prompt is built on first use.
        `original`, the raw upload the reference was cleaned from, is kept beside it.
        """
        clip = self.reference_clip(new.reference)
        ref_text = check_ref_text(new.ref_text, new.mode, self.settings.max_ref_text_chars)
        prompt = None
        try:
            made = self.engine.make_prompt(clip, ref_text, self.engine.voice_mode(new.mode))
            prompt = (made.fingerprint, self.engine.prompt_bytes(made))
        except ModelUnavailable as error:
            log.warning("saving %r without a prompt (built on first use): %s", new.name, error)
        source = Path(new.original) if new.original and Path(new.original).is_file() else Path(new.reference)
        if source.stat().st_size > self.settings.max_upload_bytes:
            raise InvalidInput("The original upload is larger than the upload limit.")
        preview = None if new.preview is None else (new.preview.samples, new.preview.rate)
        return self.library.save(new.name, clip, ref_text, new.language, new.mode, prompt=prompt,
                                 notes=new.notes or "", tags=new.tags, original=(source.name, source.read_bytes()),
                                 preview=preview)

    def rename_voice(self, name: str, new_name: str) -> Voice:
        return self.library.rename(name, new_name)

    def duplicate_voice(self, name: str, new_name: str) -> Voice:
        return self.library.duplicate(name, new_name)

    def delete_voice(self, name: str) -> Voice:
        """Into the trash; `restore_voice` brings it back."""
        return self.library.delete(name)

    def restore_voice(self, name: str | None = None) -> Voice:
        return self.library.restore(name or None)

    def set_default_voice(self, name: str) -> Voice:
        return self.library.set_default(name)

    def empty_trash(self) -> tuple[int, int]:
        """Remove deleted voices for good (no Undo after this): (voices removed, bytes freed)."""
        return self.library.empty_trash()

    def export_voice(self, name: str) -> Path:
        voice = self.library.get(name)
        return archive.export_voice(self.library, voice.name, self.files.path(voice.folder, ".zip"))

    def import_voice(self, file, name: str | None = None, language: str = "Auto") -> Voice:
        """A Voice Studio .zip, or a .pt voice file saved by the official Qwen3-TTS demo."""
        if not file:
            raise InvalidInput("Choose a voice file (.zip from Voice Studio, or .pt from the Qwen3-TTS demo).")
        path = Path(file)
        if path.suffix.lower() == ".zip":
            return archive.import_zip(self.library, path)
        reader = self.voice_file_reader(path.suffix.lower())
        if path.stat().st_size > self.settings.max_upload_bytes:
            raise InvalidInput("That voice file is larger than the upload limit.")
        reader.load()
        prompt = reader.read_voice_file(path)
        foreign = archive.ForeignPrompt(reader.prompt_bytes(prompt), prompt.fingerprint, prompt.mode,
                                        prompt.ref_text, reader.label)
        return archive.import_prompt(self.library, path, name or path.stem, foreign, language)

    def voice_file_reader(self, suffix: str) -> Engine:
        """The engine that reads voice files with this suffix, whichever engine is the default."""
        for name in self.engine_names():
            engine = self.engine_for(name)
            if suffix in engine.capabilities.voice_files:
                return engine
        known = sorted({s for n in self.engine_names() for s in self.engine_for(n).capabilities.voice_files})
        raise InvalidInput(f"Voice files are .zip (Voice Studio) or {', '.join(known)}; not {suffix or 'this'}.")

    def voice_details(self, name: str | None) -> VoiceDetails | None:
        """Summary, reference and approved preview of a voice; None when no voice is chosen.

        The audio files are copies among the studio's temporary files, so a door can serve them
        wherever the library lives (and a later delete or rename cannot pull them away mid-playback).
        """
        if not name:
            return None
        voice = self.library.get(name)
        folder = self.library.path(voice)
        reference = self.library.reference_path(voice)
        preview = folder / voice.preview if voice.preview else None
        return VoiceDetails(voice.summary(), self._copy(reference, "reference"),
                            self._copy(preview if preview and preview.is_file() else None, "preview"))

    def _copy(self, path: Path | None, stem: str) -> Path | None:
        if path is None:
            return None
        target = self.files.path(stem, path.suffix)
        try:
            target.write_bytes(path.read_bytes())
        except FileNotFoundError:
            return None  # deleted meanwhile
        return target

    def take_clip(self, path) -> audio.Clip:
        """A take sent back by a client (to keep as an approved preview), decoded within the limits."""
        return audio.load(path, max_bytes=self.settings.max_upload_bytes,
                          max_seconds=self.settings.max_request_seconds)

    def voice_names(self) -> list[str]:
        return [v.name for v in self.library.voices()]
