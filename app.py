"""Voice Studio command line: parse settings, build the app, launch it.

    python app.py [--model ID_OR_DIR] [--device auto|cuda|cpu|mps] [--share] ...

`python app.py --help` lists every flag; each also reads STUDIO_<FLAG> from the environment.
"""

from __future__ import annotations

import logging
import sys

from studio.config import Settings
from studio.engine import Engine
from studio.errors import StudioError
from studio.transcribe import Transcriber
from studio.ui import build_app


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_args(argv)
    except StudioError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    engine = Engine(settings)
    transcriber = Transcriber(settings.whisper_model, settings.device)
    if settings.preload:
        for model in (engine, transcriber):
            try:
                model.load(progress=print)
            except StudioError as error:
                # The studio still serves its page; using that model reports the same message.
                logging.getLogger("studio").error("%s", error)
    demo = build_app(settings, engine, transcriber)
    demo.queue(default_concurrency_limit=settings.concurrency)
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=settings.share,
        auth=settings.auth,
        max_file_size=f"{settings.max_upload_mb:g}mb",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
