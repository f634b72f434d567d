"""Errors meant for users: the CLI prints their message on one line, never a traceback."""


class EdgeVisionError(Exception):
    """Base of every error whose message is fit to show a user as it is."""

    exit_code = 2
