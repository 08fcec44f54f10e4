"""Voice Studio: clone a voice from a short clip with Qwen3-TTS, stream it, keep it in a library."""

__version__ = "0.1.0"
