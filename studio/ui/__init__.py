"""The Gradio door: tabs Reference, Preview, Compare, Library, and the named API endpoints.

Adapters only. Each tab module builds its components (`layout`), connects them (`wire`) and
offers its actions as named endpoints (`api_name=`) that scripts reach with gradio_client;
every handler converts Gradio values into core types, calls the `Studio`, and converts the
result back. User mistakes (`StudioError`) become `gr.Error` messages; anything else is
logged with its traceback and shown as a short generic message. The live player and the take
history are modules of their own; the page's JavaScript and CSS are files in `static/`.
"""

from __future__ import annotations

import gradio as gr

from ..config import Settings
from ..studio import Studio
from ..tickets import Tickets
from .common import STATIC, Engine, engine_note, user_errors
from .compare import CompareTab
from .history import HistoryPanel
from .library import LibraryTab
from .live import LivePlayer
from .preview import PreviewTab
from .reference import ReferenceTab

STATUS_SECONDS = 2.0  # how often an open page refreshes the status line

__all__ = ["StudioUI", "build_app", "engine_note", "launch_options"]


def launch_options() -> dict:
    """What `Blocks.launch` needs for the page to look right: its stylesheet (a file)."""
    return {"css_paths": [STATIC / "studio.css"]}


class StudioUI:
    """Builds the Blocks app around one `Studio`; `tickets` admit its live players to the page WebSocket."""

    def __init__(self, studio: Studio, tickets: Tickets | None = None):
        self.studio = studio
        self.tickets = tickets if tickets is not None else Tickets()
        self.reference = ReferenceTab(studio)
        self.history = HistoryPanel(studio)
        live = LivePlayer(studio, self.tickets)  # one component, one player on each of Preview and Compare
        self.preview = PreviewTab(studio, live, self.history)
        self.compare = CompareTab(studio, live)
        self.library = LibraryTab(studio)

    def status(self) -> str:
        """Whether the TTS model is loaded, and where; what the batch is generating and what waits."""
        return self.studio.status()

    def build(self) -> gr.Blocks:
        with gr.Blocks(title="Voice Studio", delete_cache=(3600, 3600)) as demo:
            gr.Markdown("# Voice Studio\nClone a voice from a short clip with Qwen3-TTS.")
            status = gr.Markdown(self.studio.status(), elem_id="status")
            with gr.Tabs() as tabs:
                with gr.Tab("Reference", id="reference"):
                    reference = self.reference.layout()
                with gr.Tab("Preview", id="preview") as preview_tab:
                    preview = self.preview.layout()
                with gr.Tab("Compare", id="compare") as compare_tab:
                    compare = self.compare.layout()
                with gr.Tab("Library", id="library") as library_tab:
                    library = self.library.layout()
            self.reference.wire(reference, preview, tabs)
            self.preview.wire(preview, status)
            self.library.wire(library, preview, tabs, library_tab, self.preview.voice_choices)
            self.compare.wire(compare, preview, compare_tab)
            # The voice list and the history are current whenever Preview is shown, and on every page load.
            listing = self.history.outputs(preview["history"])
            preview_tab.select(self.preview.refreshed_voices, inputs=preview["voice"], outputs=preview["voice"],
                               api_visibility="private").then(self.history.listing, outputs=listing,
                                                              api_visibility="private")
            demo.load(self.history.listing, outputs=listing, api_visibility="private")
            demo.load(user_errors(self.status), outputs=status, api_name="status")
            # The status line says how many requests the batch is generating and how many wait.
            gr.Timer(STATUS_SECONDS).tick(self.status, outputs=status, show_progress="hidden", queue=False,
                                          api_visibility="private")
        return demo


def build_app(settings: Settings, engine: Engine | None = None, transcriber=None, studio: Studio | None = None,
              tickets: Tickets | None = None) -> gr.Blocks:
    return StudioUI(studio or Studio(settings, engine, transcriber=transcriber), tickets).build()
