"""Errors a user can cause, with messages written for that user.

Anything raised from the core that is not a `StudioError` is a bug: the UI and
the HTTP routes log it with its traceback and show a generic message instead.
"""


class StudioError(Exception):
    """Base class: `str(error)` is shown to the user as is."""


class InvalidInput(StudioError):
    """Text, language, settings or names the studio cannot use."""


class AudioError(StudioError):
    """An upload or recording that cannot be used as reference audio."""


class ModelUnavailable(StudioError):
    """A model could not be loaded (offline, wrong path, out of memory)."""


class Cancelled(StudioError):
    """Generation was stopped by the user or a disconnected client."""


class VoiceNotFound(InvalidInput):
    """No voice of that name in the library (or no default voice)."""


class LibraryBusy(StudioError):
    """Another writer held the library lock for too long."""


class DiskFull(StudioError):
    """The disk holding the library has no room for a change; nothing was half-written."""
