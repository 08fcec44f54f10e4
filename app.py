"""Voice Studio command line: parse settings, build the studio and its doors, launch them.

    python app.py [--model ID_OR_DIR] [--device auto|cuda|cpu|mps] [--share] ...

`python app.py --help` lists every flag; each also reads STUDIO_<FLAG> from the environment.
"""

from __future__ import annotations

import logging
import signal
import sys

from studio import connections
from studio.browser.routes import add_routes as add_browser_routes
from studio.config import Settings
from studio.errors import StudioError
from studio.gate import Gate, LoginThrottle, gradio_login
from studio.openai_compat import speech_body_limit
from studio.server import add_routes
from studio.studio import Studio, engine_names
from studio.tickets import Tickets
from studio.ui import StudioUI, launch_options

EXPOSED = """refusing to start: {where} without --auth would let anyone who can reach it
  - list, play, rename, delete, import and export every voice in {voices}, including the raw original recordings;
  - generate speech in those voices through the UI, gradio_client, /api/v1/speak and /v1/audio/speech.
Add --auth USER:PASS (or --auth @FILE; the speech routes then need --api-key), or pass --allow-anonymous if that
is what you want."""


def exposure_problem(settings: Settings) -> str | None:
    """Why the studio must not start as configured, or None."""
    if not settings.public or settings.auth or settings.allow_anonymous:
        return None
    where = "a public --share link" if settings.share else f"listening on {settings.host}"
    return EXPOSED.format(where=where, voices=settings.voices_dir)


def launch(studio: Studio, block: bool = True, quiet: bool = False, tickets: Tickets | None = None):
    """Serve the UI and the speech routes on one port (and the share link); returns the Gradio app."""
    settings = studio.settings
    tickets = tickets or Tickets()  # the page's live player opens the speech WebSocket with these, not the API key
    demo = StudioUI(studio, tickets).build()
    demo.queue(default_concurrency_limit=settings.concurrency, max_size=settings.queue_size)
    app, _, _ = demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=settings.share,
        auth=settings.auth,
        max_file_size=f"{settings.max_upload_mb:g}mb",
        prevent_thread_lock=True,
        quiet=quiet,
        **launch_options(),
    )
    add_routes(app, studio, tickets)  # routes added to Gradio's own app serve on its port and share link
    add_browser_routes(app, studio)  # /browser/: engines that run in the listener's browser
    demo.connection_guard = guard(demo, app, settings)
    if block:
        demo.block_thread()
    return demo


def guard(demo, app, settings: Settings) -> connections.ConnectionGuard:
    """Bound connections, bodies and logins on the server Gradio started (it takes no such settings itself)."""
    watch = connections.ConnectionGuard(connections.connection_budget(settings.max_connections),
                                        settings.max_client_connections, settings.header_timeout,
                                        settings.body_timeout)
    auth = settings.auth is not None
    connections.install(demo.server, watch, lambda inner: Gate(
        inner, settings.max_upload_bytes, speech_body_limit(settings), logged_in=gradio_login(app) if auth else None,
        throttle=LoginThrottle() if auth else None))
    connections.quiet_accept_errors()
    return watch


def exit_on_sigterm() -> None:
    """SIGTERM (a service manager's stop, `kill`) exits like Ctrl+C: temporary folders are removed on the way."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_args(argv, engines=engine_names())  # exits with status 2 and a message on a bad flag or variable
    problem = exposure_problem(settings)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if settings.public:
        logging.getLogger("studio").warning("the studio is reachable by others%s",
                                            "" if settings.auth else " WITHOUT a password (--allow-anonymous)")
    studio = Studio(settings)
    if settings.preload:
        for model in (studio.engine, studio.transcriber):
            try:
                model.load(progress=print)
            except StudioError as error:
                # The studio still serves its page; using that model reports the same message.
                logging.getLogger("studio").error("%s", error)
    launch(studio)
    return 0


if __name__ == "__main__":
    sys.exit(main())
