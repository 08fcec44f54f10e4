"""Marvis TTS (CSM) through transformers' CsmForConditionalGeneration."""

from .engine import MarvisEngine

__all__ = ["MarvisEngine"]
