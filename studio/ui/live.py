"""The live player: our own component, fed by the studio's page WebSocket (`/api/v1/live`).

Gradio's streaming audio plays through HLS and starts seconds late; this player is a
gr.HTML whose script (static/live.js) plays each chunk through Web Audio as it arrives.
The page opens its socket ahead of the click (on focus of the text, on the button, at
the click itself) so the handshake is off the click's path; the socket can do nothing
until its first message brings a single-use ticket that the UI filed (the login guards
the UI). A Stream ticket stands for a checked request (a mistake shows as an ordinary
message): the socket speaks it at once. A Compare ticket stands for a `Feed`: the
comparison runs in its own UI event and the socket relays each take's audio as it is
made. Same origin, no API key and no file path in the page.
"""

from __future__ import annotations

import json
import math

import gradio as gr

from ..feeds import Feed
from ..studio import Engine, SpeakRequest, Studio
from ..text import split_sentences
from ..tickets import Tickets
from .common import asset

PLAN_STEPS = 8  # chunk sizes sent to the page; later chunks are the largest size
# A rough speaking pace, to guess how long a line will be before it is spoken: characters per second.
PACE = {"Chinese": 5.0, "Japanese": 7.0, "Korean": 6.0}
DEFAULT_PACE = 14.0


def expected_seconds(text: str, language: str, max_seconds: float | None = None) -> float:
    """About how long `text` takes to say (at most `max_seconds` per sentence), so the player knows what is to come."""
    sentences = len(split_sentences(text, language))
    pace = PACE.get(language, DEFAULT_PACE)
    estimate = len(text.strip()) / pace + 0.3 * max(0, sentences - 1)
    if max_seconds:
        estimate = min(estimate, sentences * max_seconds)
    return round(estimate, 2)


def chunk_plan(step_seconds: float, plan=None) -> list[float]:
    """Seconds of audio in the stream's first chunks, in order (the last repeats): the engine's chunk plan
    (`sizes()` in steps), or one step at a time for an engine without one."""
    if plan is None:
        return [round(step_seconds, 4)] * PLAN_STEPS
    sizes = plan.sizes()
    return [round(next(sizes) * step_seconds, 4) for _ in range(PLAN_STEPS)]


class LivePlayer:
    """The live players on the page: each started by `trigger` (a CSS selector) and stopped by `stop`."""

    def __init__(self, studio: Studio, tickets: Tickets):
        self.studio = studio
        self.tickets = tickets
        self.runs: Tickets[Feed] = Tickets()  # feeds waiting for the run that fills them, each taken once

    def layout(self, trigger: str, stop: str, text: str, elem_id: str, hint: str) -> gr.HTML:
        # The page closes a socket it opened ahead of a click before the studio's own timeout would.
        spare = round(max(0.5, min(8.0, 0.8 * self.studio.settings.header_timeout)), 1)
        return gr.HTML("", html_template=asset("live.html"), css_template=asset("live.css"),
                       js_on_load=asset("live.js"), elem_id=elem_id, trigger=trigger, stop=stop, text=text,
                       hint=hint, spare=spare)

    def how_to_play(self, engine: Engine, text: str, language: str, max_seconds: float | None) -> dict:
        """What the page needs to play `text` from `engine` well: its rate, expected length, chunk plan and pace."""
        rtf = self.studio.history.real_time_factor(engine.name)
        return {
            "rate": engine.capabilities.sample_rate,
            "expected": expected_seconds(text, language, max_seconds),
            "plan": chunk_plan(engine.capabilities.step_seconds, _plan(engine)),
            "rtf": None if rtf is None or not math.isfinite(rtf) else round(rtf, 4),
            "engine": engine.name,
        }

    def ticket(self, request: SpeakRequest) -> str:
        """Check a request the way a stream would, file it, and say how the page should play it (JSON)."""
        engine, resolved = self.studio.speech(request)
        language = request.language if request.language != "Auto" else resolved.language
        how = self.how_to_play(engine, resolved.text, language, resolved.sampling.max_seconds)
        return json.dumps(dict(how, ticket=self.tickets.issue(request), kind="speech", text=request.text))

    def run_ticket(self, parts: int) -> tuple[str, str]:
        """A feed for a run the page will hear (Compare's `parts` takes): the page's ticket (JSON), and the key
        the run takes its feed with."""
        feed = Feed()
        return json.dumps({"ticket": self.tickets.issue(feed), "kind": "run", "parts": parts}), self.runs.issue(feed)

    def feed(self, key: str | None) -> Feed:
        """The feed a run fills; an already finished one for an unknown key (the run then goes on unheard)."""
        feed = self.runs.take(key)
        if feed is None:
            feed = Feed()
            feed.finish()
        return feed


def _plan(engine):
    """The engine's chunk plan as it stands (frame engines change it with --decode-thread); None if it has none."""
    if hasattr(engine, "chunk_plan"):
        return engine.chunk_plan()
    return getattr(engine, "plan", None)
