"""Qwen3-TTS Base (qwen-tts): our own frame loop over its talker and code predictor, its 12 Hz vocoder."""

from .engine import QwenEngine

__all__ = ["QwenEngine"]
