"""The Reference tab: upload or record, trim, clean, transcribe, then use the clip in Preview.

One-click clone does every step at once; the step-by-step controls stay for people who want them.
"""

from __future__ import annotations

import html

import gradio as gr

from ..errors import InvalidInput
from ..languages import LANGUAGES
from ..studio import Studio
from .common import HUM_CHOICES, clean_options, progress_reporter, user_errors


def audio_defaults():
    """The cleaning one click uses: the Cleaning panel's defaults."""
    return clean_options()

OPTION_KEYS = ("mono", "resample", "remove_dc", "trim_silence", "normalize", "denoise", "hum", "tail_ms")


def detected_line(transcript: dict, asked: str | None) -> str:
    """'Japanese (chosen)' when the language was forced; what Whisper detected, and how sure, otherwise."""
    words = f"{len(transcript['words'])} words with timestamps"
    if asked and asked != "Auto":
        return f"**{transcript['language']}** (chosen); {words}."
    return f"Detected **{transcript['language']}** (probability {transcript['probability']:.2f}); {words}."


def unsure_words(transcript: dict, threshold: float = 0.5) -> str:
    """The transcript with words Whisper was unsure of (low probability) marked, for a second look."""
    words = transcript.get("words") or []
    shaky = [w for w in words if w.get("probability", 1.0) < threshold]
    if not shaky:
        return ""
    marked = "".join(f"<mark title='probability {w['probability']:.2f}'>{html.escape(w['text'])}"
                     "</mark>" if w.get("probability", 1.0) < threshold else html.escape(w["text"]) for w in words)
    return f"Words Whisper was unsure of are marked; check them: {marked}"


class ReferenceTab:
    """Layout, wiring and the named reference endpoints (prepare_reference, transcribe)."""

    def __init__(self, studio: Studio):
        self.studio = studio

    # -- endpoints -----------------------------------------------------------------------------
    def prepare_reference(self, reference, start=0.0, end=0.0, mono=True, resample=True, remove_dc=True,
                          trim_silence=True, normalize=True, denoise=False, hum="off", tail_ms=150):
        """Trim and clean an upload: returns the cleaned 24 kHz WAV and the quality report (JSON)."""
        options = clean_options(mono, resample, remove_dc, trim_silence, normalize, denoise, hum, tail_ms)
        result = self.studio.prepare_reference(reference, start or 0.0, end or 0.0, options)
        return str(self.studio.write_wav(result.cleaned, "reference")), result.report.to_dict()

    def transcribe(self, reference, language="Japanese", progress=gr.Progress()):
        """Whisper transcript with detected language, probability and word timestamps (JSON)."""
        return self.studio.transcribe(reference, language, progress=progress_reporter(progress)).to_dict()

    def clone_reference(self, reference, language="Auto", start=0.0, end=0.0, progress=gr.Progress()):
        """One click from a dropped clip to a ready reference: clean, transcribe, trim to 3-15 s at word
        boundaries, check. Returns the reference WAV, its transcript (JSON, with words) and what was done."""
        studio = self.studio
        report = progress_reporter(progress)
        report("Cleaning the clip ...")
        cleaned = studio.prepare_reference(reference, start or 0.0, end or 0.0, audio_defaults())
        cleaned_path = studio.write_wav(cleaned.cleaned, "reference")
        report("Transcribing ...")
        transcript = studio.transcribe(cleaned_path, language)
        done = "; ".join(step.rstrip(".") for step in cleaned.report.steps) or "nothing needed"
        steps = [f"Cleaned ({cleaned.raw.duration:.1f} s in): {done}.",
                 detected_line(transcript.to_dict(), language)]
        report("Trimming to the best span ...")
        trimmed = studio.suggest_reference(cleaned_path, transcript)
        steps.append(trimmed.note or f"Kept all {trimmed.clip.duration:.1f} s.")
        path = studio.write_wav(trimmed.clip, "reference")
        checked = studio.approve_reference(path)
        steps.append("Checked: " + checked.advice().replace("\n", " "))
        transcript = trimmed.transcript or transcript
        return str(path), transcript.to_dict(), steps

    # -- layout --------------------------------------------------------------------------------
    def layout(self) -> dict:
        gr.Markdown("Upload or record the voice to clone. **One-click clone** cleans it, transcribes it, trims it "
                    "to the best 3-15 s at word boundaries, checks it and opens Preview with it. Or go step by step "
                    "below: trim (waveform editor or start/end), clean, transcribe, trim, use.")
        c = {}
        c["upload"] = gr.Audio(label="Recording", type="filepath", sources=["upload", "microphone"],
                               editable=True, elem_id="reference-upload")
        with gr.Row():
            c["one_click"] = gr.Button("One-click clone", variant="primary", elem_id="one-click-clone")
        c["one_click_note"] = gr.Markdown(elem_id="one-click-note")
        with gr.Row():
            c["start"] = gr.Number(value=0, label="Start (s)", minimum=0, elem_id="reference-start")
            c["end"] = gr.Number(value=0, label="End (s, 0 = end of clip)", minimum=0, elem_id="reference-end")
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
                                        allow_custom_value=True, elem_id="reference-language")
            c["transcribe"] = gr.Button("Transcribe")
        c["detected"] = gr.Markdown(elem_id="reference-detected")
        c["ref_text"] = gr.Textbox(label="Transcript (ref_text), editable", lines=2, elem_id="reference-text")
        c["unsure"] = gr.HTML(elem_id="reference-unsure")
        c["transcript"] = gr.JSON(visible=False)
        with gr.Row():
            c["suggest"] = gr.Button("Trim to a suggested 3-15 s span")
            c["trim"] = gr.Button("Trim the cleaned clip to start/end")
            c["use"] = gr.Button("Use in Preview", variant="primary")
        c["trim_note"] = gr.Markdown(elem_id="reference-trim-note")
        return c

    # -- wiring --------------------------------------------------------------------------------
    def wire(self, c: dict, preview: dict, tabs) -> None:
        studio = self.studio
        options = [c[k] for k in OPTION_KEYS]

        def clean_clip(upload, start, end, *flags):
            result = studio.prepare_reference(upload, start or 0.0, end or 0.0, clean_options(*flags))
            steps = "\n".join(f"- {step}" for step in result.report.steps) or "- none switched on"
            text = f"**After cleaning:** {result.report.after.advice()}\n\n**Steps:**\n{steps}"
            return (str(studio.write_wav(result.raw, "before")), str(studio.write_wav(result.cleaned, "reference")),
                    text, "", None, "The audio changed: transcribe it again.", "")

        c["clean"].click(user_errors(clean_clip), inputs=[c["upload"], c["start"], c["end"], *options],
                         outputs=[c["before"], c["after"], c["report"], c["ref_text"], c["transcript"],
                                  c["detected"], c["unsure"]], api_visibility="private")
        api_report = gr.JSON(visible=False)
        api_cleaned = gr.File(visible=False)
        gr.Button(visible=False).click(user_errors(self.prepare_reference),
                                       inputs=[c["upload"], c["start"], c["end"], *options],
                                       outputs=[api_cleaned, api_report], api_name="prepare_reference")

        def transcribe_clip(after, upload, language, progress=gr.Progress()):
            transcript = self.transcribe(after or upload, language, progress)
            return transcript["text"], transcript, detected_line(transcript, language), unsure_words(transcript)

        c["transcribe"].click(user_errors(transcribe_clip), inputs=[c["after"], c["upload"], c["language"]],
                              outputs=[c["ref_text"], c["transcript"], c["detected"], c["unsure"]],
                              api_visibility="private")
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

        def one_click(upload, language, start, end, progress=gr.Progress()):
            if not upload:
                raise InvalidInput("Drop or record a clip first; one click then makes it a ready reference.")
            path, transcript, steps = self.clone_reference(upload, language, start, end, progress)
            note = "**One-click clone** (the result is loaded in Preview):\n" + "\n".join(f"- {s}" for s in steps)
            return (path, transcript, transcript["text"], note, detected_line(transcript, language),
                    unsure_words(transcript), path, transcript["text"], "", upload, gr.Tabs(selected="preview"), note)

        c["one_click"].click(user_errors(one_click), inputs=[c["upload"], c["language"], c["start"], c["end"]],
                             outputs=[c["after"], c["transcript"], c["ref_text"], c["one_click_note"], c["detected"],
                                      c["unsure"], preview["reference"], preview["ref_text"], preview["voice"],
                                      preview["original"], tabs, preview["summary"]],
                             api_visibility="private")
        api_clone = [gr.File(visible=False), gr.JSON(visible=False), gr.JSON(visible=False)]
        gr.Button(visible=False).click(user_errors(self.clone_reference),
                                       inputs=[c["upload"], c["language"], c["start"], c["end"]],
                                       outputs=api_clone, api_name="clone_reference")

        c["use"].click(user_errors(use_clip), inputs=[c["after"], c["ref_text"], c["upload"]],
                       outputs=[preview["reference"], preview["ref_text"], preview["voice"], preview["original"],
                                tabs],
                       api_visibility="private")
