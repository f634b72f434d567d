"""Trainer errors a user can act on: the CLI prints the message on one line (exit 2)."""

from edgevision.errors import EdgeVisionError


class DatasetError(EdgeVisionError):
    """The training data cannot be trained on as it is (too few tags or images, unreadable CSV)."""


class ProjectError(EdgeVisionError):
    """A project folder, iteration or published name is missing or inconsistent."""


class ExportError(EdgeVisionError):
    """The exported model does not score like the trained head: a bug, never the user's data."""


class TrainError(EdgeVisionError):
    """A training run cannot start or did not finish (bad options, a missing extra, a cancelled run)."""
