"""Export an engine's graphs for the browser page: `python -m studio.export marvis --out DIR`.

A command-line tool over an engine's own exporter (`studio/engines/marvis/export.py`).
"""

import sys

from .engines.marvis.export import main

if __name__ == "__main__":
    sys.exit(main())
