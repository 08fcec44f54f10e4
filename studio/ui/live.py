"""The live player: our own component, fed by the studio's `/api/v1/speak` WebSocket.

Gradio's streaming audio plays through HLS and starts seconds late; this player is a
gr.HTML whose script (static/live.js) plays each chunk through Web Audio as it arrives.
A Stream click asks the studio for a ticket: the request is checked here (so a mistake
shows as an ordinary message), filed under a single-use ticket, and the page opens the
WebSocket with it: same origin, no API key in the page, and the login still guards it.
"""

from __future__ import annotations

import json
import math

import gradio as gr

from ..studio import SpeakRequest, Studio
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
    """One live player on the page, started by `trigger` (a CSS selector) and stopped by `stop`."""

    def __init__(self, studio: Studio, tickets: Tickets):
        self.studio = studio
        self.tickets = tickets

    def layout(self, trigger: str, stop: str, text: str, elem_id: str) -> gr.HTML:
        return gr.HTML("", html_template=asset("live.html"), css_template=asset("live.css"),
                       js_on_load=asset("live.js"), elem_id=elem_id, trigger=trigger, stop=stop, text=text)

    def ticket(self, request: SpeakRequest) -> str:
        """Check a request the way a stream would, file it, and say how the page should play it (JSON)."""
        engine, resolved = self.studio.speech(request)
        language = request.language if request.language != "Auto" else resolved.language
        rtf = self.studio.history.real_time_factor(engine.name)
        return json.dumps({
            "ticket": self.tickets.issue(request),
            "text": request.text,
            "rate": engine.capabilities.sample_rate,
            "expected": expected_seconds(resolved.text, language, resolved.sampling.max_seconds),
            "plan": chunk_plan(engine.capabilities.step_seconds, getattr(engine, "plan", None)),
            "rtf": None if rtf is None or not math.isfinite(rtf) else round(rtf, 4),
            "engine": engine.name,
        })
