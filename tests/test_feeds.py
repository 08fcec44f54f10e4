"""A run's live audio on its way to the page (studio/feeds.py), without a server or a page."""

import queue

import numpy as np
import pytest

from studio.feeds import BEHIND, UNHEARD, Feed

HOW = {"rate": 8000, "expected": 1.0, "plan": [0.08], "rtf": None, "engine": "tone"}


def drained(feed: Feed) -> list[dict]:
    messages = []
    while True:
        try:
            messages.append(feed.get(timeout=0))
        except queue.Empty:
            return messages


def test_a_feed_hands_over_every_message_in_order_and_ends_once():
    feed = Feed()
    feed.listen()
    feed.part("Column 1 (Ann)", HOW)
    feed.audio(np.ones(800, np.float32), 8000)
    feed.audio(np.zeros(0, np.float32), 8000)  # nothing to hear: not sent
    feed.part_end(time_to_first_audio=0.05, duration=0.1)
    feed.finish()
    feed.part("too late", HOW)  # after the end nothing more is kept
    messages = drained(feed)
    assert [m["type"] for m in messages] == ["part", "audio", "part_end", "complete"]
    assert messages[0]["label"] == "Column 1 (Ann)" and messages[0]["rate"] == 8000
    assert np.array_equal(messages[1]["samples"], np.ones(800, np.float32))
    assert messages[2]["time_to_first_audio"] == 0.05 and feed.closed and feed.reason is None


def test_a_feed_nobody_opens_drops_its_audio_and_says_why():
    feed = Feed(listen_seconds=0.0)
    feed.part("Column 1", HOW)
    feed.audio(np.ones(800, np.float32), 8000)
    assert feed.closed and feed.reason == UNHEARD
    assert drained(feed) == [{"type": "error", "message": UNHEARD}]


def test_a_listener_far_behind_loses_the_live_audio_not_the_run():
    feed = Feed(max_seconds=0.25)
    feed.listen()
    for _ in range(2):
        feed.audio(np.ones(800, np.float32), 8000)  # 0.1 s each: held
    assert not feed.closed
    feed.get(timeout=0)  # the listener takes one: 0.1 s held again
    feed.audio(np.ones(800, np.float32), 8000)
    assert not feed.closed
    feed.audio(np.ones(800, np.float32), 8000)  # 0.3 s would be held: too far behind
    assert feed.closed and drained(feed) == [{"type": "error", "message": BEHIND}]
    feed.finish()  # the run ends as usual; nothing more is queued
    assert drained(feed) == []


@pytest.mark.parametrize("ended_by", ["hang_up", "finish"])
def test_a_closed_feed_ignores_the_rest_of_the_run(ended_by):
    feed = Feed()
    feed.listen()
    getattr(feed, ended_by)()
    drained(feed)
    feed.audio(np.ones(800, np.float32), 8000)
    assert feed.closed and drained(feed) == []
