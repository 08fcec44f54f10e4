"""The Library tab: every saved voice, to hear, rename, duplicate, delete (with undo), export and import.

Also the named library endpoints (list_voices, save_voice, rename_voice, ...).
"""

from __future__ import annotations

import gradio as gr

from ..errors import InvalidInput
from ..languages import LANGUAGES
from ..library import Voice
from ..studio import NewVoice, Studio
from .common import user_errors

VOICE_COLUMNS = ["name", "language", "mode", "tags", "created"]
EMPTY_LIBRARY = "The library is empty. Save a voice below (from the Preview tab's reference) or import one."


def voice_rows(voices: list[Voice]) -> list[list[str]]:
    return [[v.name, v.language, v.mode, ", ".join(v.tags), v.created_at[:16].replace("T", " ")] for v in voices]


def library_message(message: str | None, has_voices: bool):
    """The hint for an empty library, kept beside what just happened (a deletion's Undo hint stays)."""
    message = message or ""
    if has_voices:
        return "" if message == EMPTY_LIBRARY else gr.skip()
    if not message or EMPTY_LIBRARY in message:
        return EMPTY_LIBRARY
    return f"{message}\n\n{EMPTY_LIBRARY}"


class LibraryTab:
    def __init__(self, studio: Studio):
        self.studio = studio

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

    def empty_trash(self) -> str:
        """Remove every deleted voice for good, to free disk space (Undo delete cannot bring them back)."""
        count, freed = self.studio.empty_trash()
        if not count:
            return "The trash is already empty."
        return f"Removed {count} deleted voice{'s' if count != 1 else ''} for good; {freed / 1e6:.1f} MB freed."

    def restore_voice(self, name: str | None = None) -> dict:
        return self.studio.restore_voice(name).summary()

    def set_default_voice(self, name: str) -> dict:
        return self.studio.set_default_voice(name).summary()

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

    def layout(self) -> dict:
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

    def wire(self, w: dict, preview: dict, tabs, library_tab, voice_choices) -> None:
        details = [w["details"], w["reference"], w["preview"]]
        listing = [w["table"], w["selected"], preview["voice"], w["message"]]

        def refreshed(query_text="", keep=None, message=""):
            names = self.studio.voice_names()
            choice = keep if keep in names else None
            rows = voice_rows(self.studio.library.list(query_text or ""))
            yield regrown()  # Gradio 6.17's table shows no more rows than it first had, unless emptied first
            yield (gr.update(value=rows), gr.update(choices=names, value=choice),
                   gr.update(choices=voice_choices()), library_message(message, bool(names)))

        def regrown():
            return gr.update(value=None), gr.skip(), gr.skip(), gr.skip()

        def after(event, keep_from=None):
            event.then(refreshed, inputs=[w["query"], keep_from or w["selected"], w["message"]], outputs=listing,
                       api_visibility="private")

        for trigger in (w["refresh"].click, w["query"].submit):
            trigger(refreshed, inputs=[w["query"], w["selected"], w["message"]], outputs=listing,
                    api_visibility="private")

        def pick(event: gr.SelectData):
            name = (event.row_value or [None])[0]
            return gr.update(value=name) if name else gr.skip()

        w["table"].select(pick, outputs=w["selected"], api_visibility="private")
        listed = gr.JSON(visible=False)
        gr.Button(visible=False).click(user_errors(self.list_voices), inputs=w["query"], outputs=listed,
                                       api_name="list_voices")
        w["selected"].change(user_errors(self.load_voice), inputs=w["selected"], outputs=details,
                             api_name="load_voice")
        library_tab.select(refreshed, inputs=[w["query"], w["selected"], w["message"]], outputs=listing,
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
