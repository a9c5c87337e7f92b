"""Errors a user can act on. Each message is one sentence that says what to do.

Interfaces turn these into their own form: the CLI prints one line and exits with status 2,
the HTTP API answers 4xx with the OpenAI error body.
"""


class OmnicoachError(Exception):
    """Base class for problems caused by input or configuration, not by a bug."""


class ConfigError(OmnicoachError):
    """The settings (environment, TOML file) are invalid."""


class UnknownModelError(OmnicoachError):
    """A model name that is not in the registry."""


class ModelFileError(OmnicoachError):
    """A model file or directory is missing, unreadable or corrupt."""


class InvalidRequestError(OmnicoachError):
    """A request (messages, sampling parameters) that cannot be served as given."""


class ContextLengthError(InvalidRequestError):
    """The prompt cannot fit in the model's context window even after trimming."""


class NotFoundError(OmnicoachError):
    """A conversation, file or job that does not exist, or belongs to another user."""

    def __init__(self, kind: str, id: str):
        super().__init__(f"no {kind} with id {id!r}")
        self.code = f"{kind}_not_found"


class FileTooLargeError(InvalidRequestError):
    """An upload over the configured size limit."""


class UnsupportedFileTypeError(InvalidRequestError):
    """An upload whose content is not a type omnicoach uses."""


class StorageFullError(OmnicoachError):
    """The disk is full: nothing was stored."""


class ConflictError(OmnicoachError):
    """A request that clashes with work under way (e.g. an answer still being written)."""

    def __init__(self, message: str, code: str, param: str | None = None):
        super().__init__(message)
        self.code, self.param = code, param
