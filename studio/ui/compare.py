"""The Compare tab: one line in several voices, modes or engines, side by side, every take scored.

Each take plays in the live player (the one Preview uses) as it is generated: the run hands its
audio to a feed, and the page hears the feed over its own socket. Also the named endpoints
compare and score_take.
"""

from __future__ import annotations

import gradio as gr

from .. import audio
from ..errors import InvalidInput
from ..languages import LANGUAGES
from ..quality import picture
from ..studio import MAX_COLUMNS, Column, ColumnResult, CompareRequest, NewVoice, Studio
from .common import Sampling, mode_choices, progress_reporter, sampling_record, seconds_of_frames, user_errors
from .live import LivePlayer

REFERENCE_COLUMN = "Reference clip (Preview tab)"
COLUMN_MODES = [("The voice's own mode", "")] + mode_choices(("icl", "xvector"))
RANKING = ("**How takes are ranked:** combined = speaker similarity (cosine to the reference, resemblyzer) "
           "- error rate (Whisper's transcript vs the text: WER, or CER for Japanese, Chinese, Korean) "
           "- 0.5 per serious flag (silent, runaway, cut off, wrong language) - 0.2 per minor flag (clipped, "
           "long pauses). The best take of each column is shown; ★ marks the best value in each row.")
SCORE_ROWS = [("similarity", "Speaker similarity", max), ("error_rate", "Error rate", min),
              ("duration", "Duration (s)", None), ("speaking_rate", "Characters per second", None),
              ("time_to_first_audio", "First audio (s)", min), ("real_time_factor", "Real-time factor", min),
              ("combined", "Combined", max)]
PICTURE = (360, 260)  # pixels: about a column's width, so it is shown near its own size
LIVE_HINT = "Press Compare to hear every column's takes as they are generated, one after another."


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
        # A star says "best"; when every column has the same value there is no best.
        star = pick(known) if pick and len(set(known)) > 1 else None
        cells = ["–" if v is None else (f"**{v:.3g} ★**" if v == star else f"{v:.3g}") for v in values]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    similarities = [b["similarity"] for b in best if b["similarity"] is not None]
    if len(similarities) > 1:
        top = max(similarities)
        lines.insert(2, "| Similarity vs the best column | " + " | ".join(
            "–" if b["similarity"] is None else f"{b['similarity'] - top:+.3f}" for b in best) + " |")
    lines.append("| Flags | " + " | ".join(", ".join(b["flags"]) or "none" for b in best) + " |")
    return "\n".join(lines)


def chosen_columns(sources, modes, engines, reference, ref_text) -> list[tuple[int, Column]]:
    """The columns picked on the page, with their positions; unused ones are left out."""
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
        raise InvalidInput("Choose at least one column to compare (one column with several takes is best of N).")
    return chosen


def part_label(index: int, column: Column, number: int, takes: int) -> str:
    """What the live player says while a take plays: its column and, with several, which take."""
    label = f"Column {index + 1} ({column.label()})"
    return f"{label}, take {number + 1} of {takes}" if takes > 1 else label


def column_markdown(result) -> str:
    best = result.best
    lines = [f"**{result.column.label()}**, seed {best.take.seed}: combined {best.scores.combined:.3f}",
             f"Heard: “{best.scores.transcript or ''}”", f"Flags: {', '.join(best.scores.flags) or 'none'}"]
    if len(result.takes) > 1:
        lines.append("Ranking: " + ", ".join(f"seed {t.take.seed} = {t.scores.combined:.3f}" for t in result.takes))
    return "\n\n".join(lines)



class CompareTab:
    def __init__(self, studio: Studio, live: LivePlayer):
        self.studio = studio
        self.settings = studio.settings
        self.live = live

    def engine_choices(self) -> list[tuple[str, str]]:
        return [(self.studio.engine_for(name).label, name) for name in self.studio.engine_names()]

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

    def _run(self, feed, positions: list[int], request: CompareRequest):
        """The comparison as page updates: progress per column and take, each column's result as soon as it
        is scored, the table at the end; every take's audio goes to the live player's `feed` as it is made."""
        studio, width = self.studio, 3  # take, picture, scores per column; then the table and the state

        def blank():
            return [gr.skip()] * (MAX_COLUMNS * width + 2)

        if not studio.scorer.loaded:
            update = blank()
            update[-2] = ("Scores load the speaker encoder and Whisper on first use; the first comparison waits "
                          "for them once.")
            yield update
        state, scored, working = [], {}, None
        update = blank()
        for index in positions:
            update[index * width + 2] = "Waiting for its turn ..."
        yield update
        for event in studio.compare_events(request):
            update = blank()
            if event[0] == "chunk":
                position, number, samples, rate = event[1:]
                if (position, number) != working:  # progress per column and take
                    working = (position, number)
                    column = request.columns[position]
                    feed.part(part_label(positions[position], column, number, request.takes),
                              self.live.how_to_play(studio.engine_for(column.engine), request.text,
                                                    request.language, request.sampling.max_seconds))
                    update[positions[position] * width + 2] = f"Generating take {number + 1} of {request.takes} ..."
                feed.audio(samples, rate)
            elif event[0] == "spoken":
                take = event[3]
                feed.part_end(time_to_first_audio=round(take.time_to_first_audio, 4), duration=round(take.duration, 3))
            elif event[0] == "scored":
                position, take = event[1], event[2]
                scored.setdefault(position, []).append(take)
                base = positions[position] * width
                if len(scored[position]) < request.takes:
                    update[base + 2] = (f"Take {len(scored[position])} of {request.takes} scored: combined "
                                        f"{take.scores.combined:.3f}.")
                else:
                    ranked = sorted(scored[position], key=lambda t: t.scores.combined, reverse=True)
                    result = ColumnResult(request.columns[position], ranked)
                    update[base:base + width] = self._shown(result, request, positions[position], state)
                    update[-1] = list(state)
            elif event[0] == "done":
                update[-2], update[-1] = score_table(event[1]), state
            yield update  # also where Stop can end the run: Gradio closes a generator between items

    def _shown(self, result: ColumnResult, request: CompareRequest, index: int, state: list) -> list:
        """A column's best take, picture and scores, as soon as its last take is scored; kept for Approve."""
        studio, best = self.studio, result.best
        clip = audio.Clip(best.take.samples, best.take.rate, "take")
        take_path = studio.write_wav(clip, "compare")
        picture_path = studio.files.path("picture", ".png")
        picture(clip, *PICTURE).save(picture_path)
        state.append(dict(index=index, voice=result.column.voice, mode=result.column.mode,
                          engine=result.column.engine or studio.engine.name, take=str(take_path),
                          seed=best.take.seed, text=request.text, language=request.language, takes=request.takes,
                          **sampling_record(request.sampling)))
        return [str(take_path), str(picture_path), column_markdown(result)]

    def layout(self) -> dict:
        gr.Markdown("The same line in several voices, or one voice in both cloning modes, side by side, each take "
                    "scored. ICL carries more of the reference's accent into other languages than x-vector only.")
        c = {"columns": []}
        with gr.Row():
            c["text"] = gr.Textbox(label="Text", value="Hello! This is my cloned voice speaking English.", lines=2,
                                   scale=3, elem_id="compare-text", info="Ctrl+Enter (Cmd+Enter) compares.")
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
                        # Shown at about its own size, so the axes' labels stay readable; no label over the plot.
                        "picture": gr.Image(label="Waveform and spectrogram", show_label=False, type="filepath",
                                            interactive=False, height=PICTURE[1] + 10, buttons=["fullscreen"],
                                            elem_id=f"compare-picture-{index}"),
                        "scores": gr.Markdown(elem_id=f"compare-scores-{index}"),
                        "approve": gr.Button("Approve this take", elem_id=f"compare-approve-{index}"),
                    }
                    c["columns"].append(column)
        with gr.Row():
            c["run"] = gr.Button("Compare", variant="primary", elem_id="compare-run")
            c["stop"] = gr.Button("Stop", variant="stop", elem_id="compare-stop")
        # One live player: columns are generated one after another, each take plays here as it is made.
        c["player"] = self.live.layout("#compare-run", "#compare-stop", "#compare-text", "compare-player", LIVE_HINT)
        c["feed"] = gr.State(None)  # the key the run takes its live feed with
        c["table"] = gr.Markdown(elem_id="compare-table")
        gr.Markdown(RANKING)
        c["message"] = gr.Markdown(elem_id="compare-message")
        c["state"] = gr.State([])
        return c

    def wire(self, c: dict, preview: dict, compare_tab) -> None:
        studio = self.studio
        columns = c["columns"]

        def refreshed(*sources):
            choices = [("(not used)", ""), REFERENCE_COLUMN] + studio.voice_names()
            return [gr.update(choices=choices, value=value) for value in sources]

        compare_tab.select(refreshed, inputs=[col["source"] for col in columns],
                           outputs=[col["source"] for col in columns], api_visibility="private")
        per_column = ["take", "picture", "scores"]
        outputs = [col[k] for col in columns for k in per_column] + [c["table"], c["state"]]
        form = [c["text"], c["language"], c["seed"], c["takes"], c["max_frames"], preview["reference"],
                preview["ref_text"], *[col["source"] for col in columns], *[col["mode"] for col in columns],
                *[col["engine"] for col in columns]]

        def form_request(text, language, seed, takes, max_frames, reference, ref_text, *picked):
            chosen = chosen_columns(picked[:MAX_COLUMNS], picked[MAX_COLUMNS:2 * MAX_COLUMNS],
                                    picked[2 * MAX_COLUMNS:], reference, ref_text)
            request = self._compare_request(text, language, [col for _, col in chosen], seed, takes, max_frames)
            return [index for index, _ in chosen], request

        def start(*values):
            """Check the form (nothing loads) and hand the live player a ticket for the run's audio."""
            _, request = form_request(*values)
            studio.check_compare(request)
            return self.live.run_ticket(len(request.columns) * request.takes)

        def run(feed_key, *values):
            feed = self.live.feed(feed_key)
            try:
                yield from self._run(feed, *form_request(*values))
            finally:
                feed.finish()  # done, failed or stopped: the player plays out what it has

        # Outside the queue, like Stream's ticket: a few milliseconds of checks.
        event = c["run"].click(user_errors(start), inputs=form, outputs=[c["player"], c["feed"]],
                               api_visibility="private", show_progress="hidden", queue=False).success(
            user_errors(run), inputs=[c["feed"], *form], outputs=outputs, api_visibility="private",
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
