"""The one error of link reading."""

from omnicoach.errors import InvalidRequestError


class LinkError(InvalidRequestError):
    """A link omnicoach will not or could not read; the message names the link and why."""
