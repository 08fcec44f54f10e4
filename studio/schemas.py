"""One pydantic schema per message the speech routes accept: every field's type and range, checked once.

A wrong value is answered with the field's name and what it should be; a number
that JSON allows but arithmetic does not (NaN, Infinity, 1e400) is refused like
any other wrong value. Rules that depend on the studio (which voices exist, which
modes an engine has, the text limit) stay with the door and the core.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import InvalidInput
from .speech import ENCODINGS, FORMATS, MAX_RATE, MIN_RATE

MAX_NAME = 200  # characters of a voice, engine, mode or language name


def expect(description: str, **constraints):
    """A field with its constraints and the words that finish 'FIELD must be ...'."""
    return Field(json_schema_extra={"expect": description}, **constraints)


Name = Annotated[Optional[str], expect("text (a name)", max_length=MAX_NAME)]
Temperature = Annotated[Optional[float], expect("a number from 0 (greedy) to 2", ge=0, le=2)]
TopP = Annotated[Optional[float], expect("a number above 0 and at most 1", gt=0, le=1)]
TopK = Annotated[Optional[int], expect("a whole number from 0 to 1000 (0 disables it)", ge=0, le=1000)]
Penalty = Annotated[Optional[float], expect("a number from 1 to 2", ge=1, le=2)]
Seed = Annotated[Optional[int], expect("a whole number below 4294967296 (negative: a fresh seed)",
                                       ge=-2**63, lt=2**32)]
MaxFrames = Annotated[Optional[int], expect("a whole number of frames from 1 to 100000 (12.5 per second)",
                                            ge=1, le=100000)]


class Message(BaseModel):
    """Strict JSON types (no "5" for 5, no 1 for true), finite numbers, unknown fields ignored."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", frozen=True)

    @classmethod
    def parse(cls, data: dict, quote: bool = False):
        """The checked message, or InvalidInput naming the first wrong field (quoted as 'field' for OpenAI)."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise FieldError.from_validation(cls, error, quote) from None


class SamplingFields(Message):
    temperature: Temperature = None
    top_p: TopP = None
    top_k: TopK = None
    repetition_penalty: Penalty = None
    seed: Seed = None
    max_frames: MaxFrames = None

    def sampling_values(self) -> dict:
        """The fields given, for `Sampling(**values)`; a negative seed asks for a fresh one."""
        values = {k: getattr(self, k) for k in ("temperature", "top_p", "top_k", "repetition_penalty", "seed",
                                               "max_frames") if getattr(self, k) is not None}
        if values.get("seed", 0) < 0:
            values["seed"] = None
        return values


class StartMessage(SamplingFields):
    """`{"type": "start", ...}` on /api/v1/speak."""

    type: Literal["start"]
    voice: Annotated[Optional[str], expect("the name of a library voice", max_length=MAX_NAME)] = None
    engine: Annotated[Optional[str], expect("an engine name (GET /v1/models lists them)", max_length=MAX_NAME)] = None
    mode: Name = None
    language: Annotated[Optional[str], expect("a language name such as English or Japanese",
                                              max_length=MAX_NAME)] = None
    sample_rate: Annotated[int, expect(f"a whole number from {MIN_RATE} to {MAX_RATE}", ge=MIN_RATE,
                                       le=MAX_RATE)] = 24000
    encoding: Annotated[Literal[ENCODINGS], expect(f"one of: {', '.join(ENCODINGS)}")] = "pcm16"
    binary: Annotated[bool, expect("true or false")] = False

    @field_validator("engine", mode="before")
    @classmethod
    def _empty_is_default(cls, value):
        return None if value == "" else value


class SpeakMessage(Message):
    """`{"type": "speak", "text": ...}` on /api/v1/speak."""

    type: Literal["speak"]
    text: Annotated[str, expect('the words to say (a speak message needs "text")', min_length=1)]

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("blank")
        return value


class ControlMessage(Message):
    """`cancel` and `stop`: nothing but their type."""

    type: Literal["cancel", "stop"]


class SpeechBody(SamplingFields):
    """The JSON body of POST /v1/audio/speech (OpenAI's fields, and ours)."""

    input: Annotated[str, expect("the text to speak", min_length=1)]
    model: Annotated[Optional[str], expect("a model or engine name", max_length=MAX_NAME)] = None
    voice: Annotated[Optional[str], expect("the name of a library voice", max_length=MAX_NAME)] = None
    response_format: Annotated[Optional[Literal[tuple(FORMATS)]], expect(f"one of: {', '.join(FORMATS)}")] = None
    speed: Annotated[float, expect("a number from 0.25 to 4.0", ge=0.25, le=4.0)] = 1.0
    language: Annotated[Optional[str], expect("a language name such as English or Japanese",
                                              max_length=MAX_NAME)] = None

    @field_validator("input")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("blank")
        return value


class FieldError(InvalidInput):
    """A message field with a wrong type or value; `field` names it."""

    def __init__(self, message: str, field: str | None):
        super().__init__(message)
        self.field = field

    @classmethod
    def from_validation(cls, schema: type[BaseModel], error: ValidationError, quote: bool) -> "FieldError":
        first = error.errors(include_url=False)[0]
        name = str(first["loc"][0]) if first["loc"] else None
        info = schema.model_fields.get(name) if name else None
        extra = (info.json_schema_extra or {}) if info is not None else {}
        expected = extra.get("expect") if isinstance(extra, dict) else None
        shown = f"'{name}'" if quote else name
        if expected:
            return cls(f"{shown} must be {expected}{_got(first)}.", name)
        return cls(f"{shown}: {first['msg']}.", name)


def _got(detail: dict) -> str:
    """', got ...' for a short wrong value (never echo a large one)."""
    if detail.get("type") == "missing":
        return ""
    value = detail.get("input")
    if isinstance(value, (dict, list)) or value is None:
        kind = {dict: "an object", list: "a list", type(None): "null"}[type(value)]
        return f", got {kind}"
    shown = repr(value)
    return f", got {shown}" if len(shown) <= 40 else ""
