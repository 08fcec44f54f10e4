"""The languages Qwen3-TTS speaks, accepted as people write them.

Every door takes a language name in any case ("English", "english") or its
ISO 639-1 code ("en", "EN"), and "auto"; the core always works with the
canonical name. The UI shows the names.
"""

from __future__ import annotations

from .errors import InvalidInput

AUTO = "Auto"
# Qwen3-TTS' languages and their ISO 639-1 codes (also Whisper's codes).
CODES = {"Chinese": "zh", "English": "en", "Japanese": "ja", "Korean": "ko", "German": "de", "French": "fr",
         "Russian": "ru", "Portuguese": "pt", "Spanish": "es", "Italian": "it"}
LANGUAGES = (AUTO, *CODES)
# Written without spaces between words: split by characters, scored by character error rate.
CJK = ("Chinese", "Japanese")


def normalise_language(value: str | None, supported: tuple[str, ...] = LANGUAGES) -> str:
    """The canonical name for a name or ISO code in any case; empty means Auto."""
    text = (value or AUTO).strip()
    lowered = text.lower()
    for name in supported:
        if lowered == name.lower() or lowered == CODES.get(name, "\0"):
            return name
    raise InvalidInput(f"Language {text[:40]!r} is not supported. Choose one of: {', '.join(supported)} "
                       "(names or ISO codes such as en, ja).")


def code_for(name: str) -> str | None:
    """ISO 639-1 code of a canonical name; None for Auto."""
    return CODES.get(name)


def name_for_code(code: str | None) -> str | None:
    return next((name for name, c in CODES.items() if c == code), None)
