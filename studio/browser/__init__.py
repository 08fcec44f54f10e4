"""Engines that run in the listener's browser: ONNX Runtime Web on graphs the studio serves.

The studio serves a page (`/browser/`), its JavaScript, the ONNX Runtime Web runtime from
its own `node_modules` (never a CDN), an engine's graphs from the local model folder, a
library voice's prompt tensors and the text's token ids. The page runs the engine's loop
itself, the same loop as the server engine, so its greedy tokens and audio equal the
server's. `routes` is the HTTP door; what each engine offers the page (graph variants, prompt tensors,
a sentence's tokens) lives with the engine (`studio/engines/browser.py` and each engine's `browser.py`).
"""
