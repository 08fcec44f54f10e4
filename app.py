"""Voice Studio command line: parse settings, build the studio and its doors, launch them.

    python app.py [--model ID_OR_DIR] [--device auto|cuda|cpu|mps] [--share] ...

`python app.py --help` lists every flag; each also reads STUDIO_<FLAG> from the environment.
"""

from __future__ import annotations

import logging
import sys

from studio.config import Settings
from studio.errors import StudioError
from studio.studio import Studio
from studio.ui import StudioUI


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_args(argv)  # exits with status 2 and a message on a bad flag or variable
    studio = Studio(settings)
    if settings.preload:
        for model in (studio.engine, studio.transcriber):
            try:
                model.load(progress=print)
            except StudioError as error:
                # The studio still serves its page; using that model reports the same message.
                logging.getLogger("studio").error("%s", error)
    demo = StudioUI(studio).build()
    demo.queue(default_concurrency_limit=settings.concurrency, max_size=settings.queue_size)
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
