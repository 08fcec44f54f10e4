"""Voice Studio: clone a voice from a short clip with Qwen3-TTS, stream it, keep it in a library.

The public API is the core layer and its types; every door (the Gradio UI, HTTP
routes, scripts) goes through a `Studio`::

    from studio import Settings, SpeakRequest, Studio

    studio = Studio(Settings(model="/path/to/Qwen3-TTS-12Hz-0.6B-Base"))
    take = studio.synthesize(SpeakRequest("Hello!", "en", voice="Aiko (sample)"))
"""

from .audio import Clip, CleanOptions, QualityReport
from .config import FRAME_RATE, SAMPLE_RATE, SAMPLES_PER_FRAME, Settings
from .engine import Engine, Sampling, SynthesisRequest, VoicePrompt, create_engine
from .errors import AudioError, Cancelled, InvalidInput, ModelUnavailable, StudioError
from .languages import LANGUAGES, normalise_language
from .library import Library, Voice
from .streaming import Chunk, Stream, Take
from .studio import NewVoice, SpeakRequest, Studio
from .text import split_sentences
from .transcribe import Transcriber, Transcript

__version__ = "0.2.0"

__all__ = [
    "AudioError", "Cancelled", "Chunk", "CleanOptions", "Clip", "Engine", "FRAME_RATE", "InvalidInput", "LANGUAGES",
    "Library", "ModelUnavailable", "NewVoice", "QualityReport", "SAMPLES_PER_FRAME", "SAMPLE_RATE", "Sampling",
    "Settings", "SpeakRequest", "Stream", "Studio", "StudioError", "SynthesisRequest", "Take", "Transcriber",
    "Transcript", "Voice", "VoicePrompt", "create_engine", "normalise_language", "split_sentences",
]
