"""TTS engines behind one audio-level protocol (`base`), created by name (`registry`).

Only an engine's own folder imports its model package (qwen_tts, transformers' CSM,
onnxruntime). `frames` holds the machinery the local codec language models share.
"""

from .base import (MAX_TAKES, MODE_NAMES, MODES, Capabilities, Engine, Piece, Sampling, SpeakJob, VoicePrompt, check_ref_text,
                   sentence_budget)
from .registry import create_engine, engine_names, register

__all__ = ["Capabilities", "Engine", "MAX_TAKES", "MODE_NAMES", "MODES", "Piece", "Sampling", "SpeakJob", "VoicePrompt",
           "check_ref_text", "create_engine", "engine_names", "register", "sentence_budget"]
