"""The take history on the Preview tab: the last takes, to play, download, make again or approve.

Every take the studio makes (Preview, several takes, Compare, the API) is in `Studio.history`;
this panel lists the newest and acts on the one picked. Several takes of one line are picked
here too.
"""

from __future__ import annotations

import gradio as gr

from ..errors import InvalidInput
from ..history import TakeRecord
from ..studio import Studio
from .common import user_errors

SHOWN = 50
COLUMNS = ["when (UTC)", "voice", "engine", "text", "seconds", "seed", "made by", "flags"]


def row(record: TakeRecord) -> list:
    text = record.text if len(record.text) <= 60 else record.text[:57] + "..."
    return [record.created_at[5:16].replace("T", " "), record.voice_name or "reference clip", record.engine, text,
            round(record.duration, 2), record.seed, record.source, "; ".join(record.flags) or ""]


class HistoryPanel:
    def __init__(self, studio: Studio):
        self.studio = studio

    def layout(self) -> dict:
        h = {}
        with gr.Accordion(f"Take history (the last {SHOWN}, kept across restarts)", open=True,
                          elem_id="history"):
            h["table"] = gr.Dataframe(self.rows()[0], headers=COLUMNS, interactive=False, wrap=True,
                                      elem_id="history-table", max_height=360)
            h["ids"] = gr.State([r.id for r in self.studio.history.recent(SHOWN)])
            h["chosen"] = gr.State(None)
            with gr.Row():
                h["audio"] = gr.Audio(label="Chosen take (play or download)", type="filepath", interactive=False,
                                      elem_id="history-take")
                with gr.Column():
                    h["details"] = gr.Markdown("Click a row to hear it, download it, make it again or approve it.",
                                               elem_id="history-details")
                    with gr.Row():
                        h["reuse"] = gr.Button("Use these settings again", elem_id="history-reuse")
                        h["approve"] = gr.Button("Approve into the voice", elem_id="history-approve")
                    h["message"] = gr.Markdown(elem_id="history-message")
        return h

    def outputs(self, h: dict) -> list:
        return [h["table"], h["ids"]]

    def listing(self):
        """The table and its take ids (emptied first: Gradio 6.17's table never grows past its first row count)."""
        yield None, gr.skip()
        yield self.rows()

    def rows(self):
        records = self.studio.history.recent(SHOWN)
        return [row(r) for r in records] or [[""] * len(COLUMNS)], [r.id for r in records]

    def playable(self, record: TakeRecord):
        """A copy among the studio's temporary files, so the page can serve it wherever the history lives."""
        target = self.studio.files.path(f"take-{record.seed}", ".wav")
        target.write_bytes(self.studio.history.audio_path(record).read_bytes())
        return target

    def chosen(self, take_id) -> TakeRecord:
        if not take_id:
            raise InvalidInput("Pick a take in the history first.")
        return self.studio.history.get(take_id)

    def wire(self, h: dict, preview: dict) -> None:
        studio = self.studio

        def pick(ids, event: gr.SelectData):
            index = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
            if not isinstance(index, int) or not 0 <= index < len(ids):
                raise InvalidInput("Pick a take in the history first.")
            record = studio.history.get(ids[index])
            scores = ""
            if record.scores:
                scores = "; scores: " + ", ".join(f"{k} {v:.3g}" for k, v in record.scores.items()
                                                  if isinstance(v, (int, float)) and not isinstance(v, bool))
            details = (f"**{record.voice}** through {record.engine}, {record.mode}, seed {record.seed}: "
                       f"“{record.text}” ({record.language}); {record.duration:.2f} s, first audio after "
                       f"{record.time_to_first_audio:.2f} s, real-time factor {record.real_time_factor:.2f}{scores}.")
            return str(self.playable(record)), details, record.id, ""

        h["table"].select(user_errors(pick), inputs=h["ids"], outputs=[h["audio"], h["details"], h["chosen"],
                                                                       h["message"]], api_visibility="private")

        def reuse(take_id):
            record = self.chosen(take_id)
            sampling = record.sampling
            note = "Settings restored: text, language, voice, engine, mode, seed and sampling."
            if not record.voice_name:
                note += " The take was spoken from an uploaded reference clip: keep or upload that clip."
            return (record.text, record.language, record.voice_name, record.engine, record.mode,
                    sampling.get("temperature", 0.9), sampling.get("top_p", 1.0), sampling.get("top_k", 50),
                    sampling.get("repetition_penalty", 1.05), record.seed,
                    round((sampling.get("max_seconds") or 0) * 12.5), note)  # the form counts 80 ms units

        targets = [preview[k] for k in ("text", "language", "voice", "engine", "mode", "temperature", "top_p",
                                        "top_k", "repetition_penalty", "seed", "max_frames")]
        h["reuse"].click(user_errors(reuse), inputs=h["chosen"], outputs=targets + [h["message"]],
                         api_visibility="private")

        def approve(take_id):
            record = self.chosen(take_id)
            if not record.voice_name:
                raise InvalidInput("This take was spoken from an unsaved reference clip: save the voice on the "
                                   "Library tab first (it can keep the last take as its preview).")
            details = dict(record.sampling, seed=record.seed, text=record.text, language=record.language,
                           engine=record.engine, mode=record.mode, takes=1)
            voice = studio.approve(record.voice_name, self.studio.history.audio_path(record), details)
            return f"Approved seed {record.seed} as the preview of {voice.name!r}."

        h["approve"].click(user_errors(approve), inputs=h["chosen"], outputs=h["message"], api_visibility="private")
