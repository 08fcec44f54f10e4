"""Voice Studio: clone a voice from a short clip, stream it, keep it in a library.

The public face is the core and its types; every door (the Gradio UI, HTTP routes,
scripts) goes through a `Studio`::

    from studio import Settings, SpeakRequest, Studio

    studio = Studio(Settings(model="/path/to/Qwen3-TTS-12Hz-0.6B-Base"))
    take = studio.synthesize(SpeakRequest("Hello!", "en", voice="Aiko (sample)"))

Engines live in `studio.engines`, behind one small audio-level protocol.
"""

from .audio import Clip
from .config import Settings
from .engines import Sampling
from .errors import AudioError, Cancelled, InvalidInput, LibraryBusy, ModelUnavailable, StudioError, VoiceNotFound
from .library import Voice
from .streaming import Chunk, Stream, Take
from .studio import Column, CompareRequest, NewVoice, SpeakRequest, Studio
from .transcribe import Transcript

__version__ = "0.3.0"

__all__ = [
    "AudioError", "Cancelled", "Chunk", "Clip", "Column", "CompareRequest", "InvalidInput", "LibraryBusy",
    "ModelUnavailable", "NewVoice", "Sampling", "Settings", "SpeakRequest", "Stream", "Studio", "StudioError",
    "Take", "Transcript", "Voice", "VoiceNotFound",
]
