"""The ImageClassifierService: the Custom Vision export container's HTTP API over the scoring core.

Imports stay lazy: `edgevision --help` and the other modules' containers must not need Flask.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ClassifierSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from edgevision.classifier.app import create_app

        return create_app
    if name == "ClassifierSettings":
        from edgevision.classifier.settings import ClassifierSettings

        return ClassifierSettings
    raise AttributeError(name)
