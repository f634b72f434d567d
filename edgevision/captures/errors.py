"""Errors of the captures tool: each is shown to the user as one line."""

from edgevision.errors import EdgeVisionError


class CapturesError(EdgeVisionError):
    """Bad input to `edgevision captures` (a folder, an option, the mapping file)."""


class InvalidPackage(CapturesError):
    """A package does not validate against the Camtrap DP profile and table schemas."""

    exit_code = 1
