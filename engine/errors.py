"""The one error tree of sleepstream.

Third-party errors are translated at the boundary with ``raise X(...) from exc``.
Every message says what to do about it.
"""

from __future__ import annotations


class SleepstreamError(Exception):
    """Root of every error sleepstream raises on purpose."""


class ConfigError(SleepstreamError):
    """The configuration is invalid. ``problems`` lists every ``(where, what to fix)`` pair."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = list(problems)
        lines = [f"{where}: {what}" for where, what in self.problems]
        super().__init__("invalid configuration:\n  " + "\n  ".join(lines))


class SourceError(SleepstreamError):
    """A data source could not be opened or read."""


class SourceNotFoundError(SourceError):
    """A live stream or file to read from does not exist or could not be resolved in time."""


class RecordingError(SourceError):
    """A recording file is unreadable or not a valid EDF/EDF+ file."""


class PayloadError(SleepstreamError):
    """A device payload was rejected (malformed, oversized, wrong types). Counted and dropped."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class SinkError(SleepstreamError):
    """An output sink failed to write."""


class ModelError(SleepstreamError):
    """A model checkpoint or inference backend could not be loaded or run."""


class BackendUnavailableError(ModelError):
    """An optional inference backend is not installed; the message names the package to install."""


def known_failure(text: str) -> bool:
    """Whether a failure recorded as ``"<ErrorType>: message"`` is one of this tree's errors
    (what a device, a file or the configuration did: exit status 2) rather than a bug."""
    name = text.split(":", 1)[0].strip()
    todo: list[type[SleepstreamError]] = [SleepstreamError]
    while todo:
        cls = todo.pop()
        if cls.__name__ == name:
            return True
        todo.extend(cls.__subclasses__())
    return False
