"""The Preview tab: say a line in a voice, live (our own player) or in one shot, and keep what you like.

Also the named synthesis endpoints scripts use: synthesize, synthesize_takes, stream.
"""

from __future__ import annotations

import time
from dataclasses import replace

import gradio as gr

from .. import audio
from ..studio import Studio
from .common import (MAX_TAKES, pumped, REFERENCE_CHOICE, engine_note, in_worker, mode_choices, progress_reporter,
                     speak_request, take_details, to_gradio_audio, user_errors, whole_number)
from .history import HistoryPanel
from .live import LivePlayer

LIVE_HINT = "Press Stream (or Ctrl+Enter in the text) to hear the line as it is generated."
FORM = ("text", "language", "voice", "reference", "ref_text", "mode", "temperature", "top_p", "top_k",
        "repetition_penalty", "seed", "max_frames")


def form_request(voice, mode, *values):
    """The form as a core request; with a library voice, the cloning mode applies to it (re-prompted if needed)."""
    request = speak_request(*values)
    if voice and voice.strip():
        request = replace(request, voice_mode=mode or None)
    return request


class PreviewTab:
    def __init__(self, studio: Studio, live: LivePlayer, history: HistoryPanel):
        self.studio = studio
        self.settings = studio.settings
        self.live = live
        self.history = history

    # -- endpoints -----------------------------------------------------------------------------
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

    # -- the page's own handlers ---------------------------------------------------------------
    def one_shot(self, voice, mode, *values, retries=0, takes=1, engine="", progress=gr.Progress(track_tqdm=True)):
        """One take (with retries), or several in one batch, picked from the history list."""
        count = whole_number(takes, "Takes")
        request = form_request(voice, mode, *values, engine)
        report = progress_reporter(progress)

        def work(stop):
            if count == 1:
                take = self.studio.synthesize(request, should_stop=stop.is_set, progress=report)
                take, notes = self.studio.retry_flagged(request, take, int(retries or 0), should_stop=stop.is_set)
                return take, " ".join([take.summary(), *notes])
            made = self.studio.synthesize_takes(request, count, should_stop=stop.is_set, progress=report)
            lines = [f"{count} takes in one batch, {made[0].total_time:.2f} s in all: they are at the top of the "
                     "take history below; pick one there to hear, download, reuse or approve it. The same seed "
                     "and number of takes give the same takes again."]
            lines += [f"- Take {n + 1}: seed {t.seed}, {t.duration:.2f} s. {' '.join(t.flags)}"
                      for n, t in enumerate(made)]
            return made[0], "\n".join(lines)

        take, summary = yield from in_worker(work, (gr.skip(),) * 2)
        heard = self.studio.speaker(request)
        engine_label = self.studio.engine_for(request.engine).label
        yield to_gradio_audio(take.samples, take.rate), f"**{heard}** through {engine_label}: {summary}"

    def ticket(self, voice, mode, *values, engine=""):
        """Check the form and hand the live player a ticket for it (the first one also loads the model)."""
        return self.live.ticket(form_request(voice, mode, *values, engine)), "Streaming…"

    def finished(self, event: gr.EventData):
        """The live take is complete: into the Take player, with the figures the browser measured."""
        data = event._data or {}
        record = self.studio.history.get(data.get("take") or "")
        path = self.history.playable(record)
        heard = data.get("click_to_sound")
        sound = f"sound {heard / 1000:.2f} s after the click (measured in this browser); " if heard else ""
        stalls = int(data.get("stalls") or 0)
        summary = (f"**{record.voice}** through {self.studio.engine_for(record.engine).label}: {sound}"
                   f"{record.duration:.2f} s of audio; engine's first audio after {record.time_to_first_audio:.2f} s; "
                   f"total {record.total_time:.2f} s (real-time factor {record.real_time_factor:.2f}); seed "
                   f"{record.seed}; {stalls} stall{'s' if stalls != 1 else ''}. {' '.join(record.flags)}")
        return str(path), summary.strip()

    # -- layout --------------------------------------------------------------------------------
    def voice_choices(self) -> list[tuple[str, str]]:
        return [(REFERENCE_CHOICE, "")] + [(name, name) for name in self.studio.voice_names()]

    def engine_choices(self) -> list[tuple[str, str]]:
        return [(self.studio.engine_for(name).label, name) for name in self.studio.engine_names()]

    def layout(self) -> dict:
        default = self.studio.library.default()
        engine = self.studio.engine
        p = {}
        with gr.Row():
            with gr.Column():
                p["engine"] = gr.Dropdown(self.engine_choices(), value=engine.name, label="Engine",
                                          elem_id="preview-engine")
                p["engine_note"] = gr.Markdown(engine_note(engine.label, engine.capabilities), elem_id="engine-note")
                # Custom values: voices saved after the page was built are valid too; the library checks names.
                p["voice"] = gr.Dropdown(self.voice_choices(), value="", label="Voice", allow_custom_value=True,
                                         info="A library voice, or the reference clip below (when none is "
                                              f"uploaded: the default voice{f', {default.name}' if default else ''})",
                                         elem_id="preview-voice")
                p["reference"] = gr.Audio(label="Reference clip", type="filepath", sources=["upload", "microphone"],
                                          elem_id="preview-reference")
                p["ref_text"] = gr.Textbox(label="Reference transcript (ref_text)", lines=2, elem_id="preview-ref-text",
                                           placeholder="Exactly what is said in the reference clip")
                p["mode"] = gr.Radio(mode_choices(engine.capabilities.modes), value=engine.capabilities.modes[0],
                                     label="Cloning mode", elem_id="preview-mode")
            with gr.Column():
                p["text"] = gr.Textbox(label="Text to speak", lines=4, elem_id="preview-text",
                                       info="Ctrl+Enter (Cmd+Enter) streams it.",
                                       value="Hello! This is my cloned voice speaking English.")
                p["language"] = gr.Dropdown(list(engine.capabilities.languages), value="English",
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
                    p["stream"] = gr.Button("Stream", variant="primary", elem_id="preview-stream")
                    p["synthesize"] = gr.Button("Synthesize (one shot)", elem_id="preview-synthesize")
                    p["stop"] = gr.Button("Stop", variant="stop", elem_id="preview-stop")
        p["player"] = self.live.layout("#preview-stream", "#preview-stop", "#preview-text", "player", LIVE_HINT)
        # A file path and no format: as an input (saving the take) Gradio would otherwise decode it itself, unbounded.
        p["take"] = gr.Audio(label="Take", type="filepath", interactive=False, elem_id="take")
        p["summary"] = gr.Markdown(elem_id="take-summary")
        p["history"] = self.history.layout()
        # The raw upload behind a reference cleaned on the Reference tab; a direct upload here clears it.
        p["original"] = gr.State(None)
        p["one_shot_started"] = gr.State(None)
        return p

    # -- wiring --------------------------------------------------------------------------------
    def wire(self, p: dict, status) -> None:
        inputs = [p[k] for k in FORM]
        form = [p["voice"], p["mode"], *inputs]
        limit = self.settings.concurrency
        listing = self.history.outputs(p["history"])

        def ticket(voice, mode, *values):
            *values, engine = values
            return self.ticket(voice, mode, *values, engine=engine)

        # Outside the queue: a ticket is a few milliseconds of checks, and the queue's round trip is not.
        p["stream"].click(user_errors(ticket), inputs=form + [p["engine"]], outputs=[p["player"], p["summary"]],
                          api_visibility="private", show_progress="hidden", queue=False).then(
            self.studio.status, outputs=status, api_visibility="private")
        p["player"].finished(user_errors(self.finished), outputs=[p["take"], p["summary"]],
                             api_visibility="private").then(
            self.history.listing, outputs=listing, api_visibility="private")
        def stopped_live(event: gr.EventData):
            return f"Stopped after {float((event._data or {}).get('seconds') or 0):.1f} s."

        p["player"].stopped(stopped_live, outputs=p["summary"], api_visibility="private")

        def one_shot(voice, mode, *values, progress=gr.Progress(track_tqdm=True)):
            *values, retries, takes, engine = values
            yield from self.one_shot(voice, mode, *values, retries=retries, takes=takes, engine=engine,
                                     progress=progress)

        started = p["synthesize"].click(time.monotonic, outputs=p["one_shot_started"], api_visibility="private")
        shot = started.then(user_errors(one_shot), inputs=form + [p["retries"], p["takes"], p["engine"]],
                            outputs=[p["take"], p["summary"]], api_visibility="private", concurrency_limit=limit)
        shot.then(lambda: None, outputs=p["one_shot_started"], api_visibility="private").then(
            self.history.listing, outputs=listing, api_visibility="private").then(
            self.studio.status, outputs=status, api_visibility="private")

        def stopped(since):
            if since is None:
                return gr.skip(), None
            return f"Stopped after {time.monotonic() - since:.1f} s.", None

        p["stop"].click(stopped, inputs=p["one_shot_started"], outputs=[p["summary"], p["one_shot_started"]],
                        cancels=[shot], api_visibility="private")
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
        p["engine"].change(user_errors(self.engine_form), inputs=[p["engine"], p["language"], p["mode"], p["voice"]],
                           outputs=[p["language"], p["mode"], p["engine_note"]], api_visibility="private")
        p["voice"].change(user_errors(self.voice_form), inputs=[p["voice"], p["engine"]],
                          outputs=[p["reference"], p["ref_text"], p["mode"]], api_visibility="private")
        self.history.wire(p["history"], p)

    def engine_form(self, name, language, mode, voice=""):
        """Offer only what the chosen engine can do: its languages and cloning modes, and say what it is."""
        engine = self.studio.engine_for(name)
        caps = engine.capabilities
        languages = list(caps.languages)
        language = language if language in languages else languages[0]
        mode = mode if mode in caps.modes else caps.modes[0]
        return (gr.update(choices=languages, value=language), gr.update(choices=mode_choices(caps.modes), value=mode),
                engine_note(engine.label, engine.capabilities))

    def voice_form(self, voice, engine_name):
        """A library voice brings its own reference: the clip fields are disabled, the mode shows the voice's."""
        chosen = bool(voice and voice.strip())
        mode = gr.skip()
        if chosen:
            try:
                saved = self.studio.library.get(voice)
            except Exception:  # noqa: BLE001 - a name being typed; the library says so when it is used
                saved = None
            modes = self.studio.engine_for(engine_name).capabilities.modes
            if saved is not None:
                mode = gr.update(value=saved.mode if saved.mode in modes else modes[0])
        hint = "Not used: the library voice brings its own reference clip." if chosen else None
        return (gr.update(interactive=not chosen, label="Reference clip" + (" (not used with a library voice)"
                                                                               if chosen else "")),
                gr.update(interactive=not chosen, placeholder=hint or "Exactly what is said in the reference clip"),
                mode)

    def refreshed_voices(self, voice):
        names = self.studio.voice_names()
        return gr.update(choices=self.voice_choices(), value=voice if voice in names or not voice else "")
