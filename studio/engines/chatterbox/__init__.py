"""Chatterbox-Turbo: ResembleAI's ONNX export run with onnxruntime."""

from .engine import ChatterboxEngine

__all__ = ["ChatterboxEngine"]
