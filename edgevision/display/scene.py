"""From a scoring result to the 64 pixels: validate the message, pick the top tag, choose its picture, then
apply the threshold, brightness and rotation. Pure logic, no I/O, so every rule is testable on its own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgevision.contracts import ContractError, DisplayInput, parse
from edgevision.display.icons import IconSet, blank
from edgevision.display.settings import DisplaySettings


class MalformedMessage(ValueError):
    """The message is not a scoring result; it is logged and skipped."""


@dataclass(frozen=True)
class Scored:
    tag: str
    probability: float


@dataclass(frozen=True)
class Scene:
    """What the LEDs show and why."""

    kind: str  # "icon" | "initial" | "idle"
    frame: np.ndarray  # (8, 8, 3) uint8, after brightness and rotation
    tag: str | None = None
    probability: float | None = None
    icon: str | None = None  # icon name, or the initial shown for an unknown tag

    def describe(self) -> str:
        if self.kind == "idle":
            top = f" (top {self.tag!r} {self.probability:.2f})" if self.tag is not None else ""
            return f"idle{top}"
        return f"{self.kind} {self.icon!r} for {self.tag!r} ({self.probability:.2f})"

    def summary(self) -> dict[str, Any]:
        return {"kind": self.kind, "tag": self.tag, "probability": self.probability, "icon": self.icon}


def parse_predictions(body: Any) -> list[Scored]:
    """The `predictions` of a scoring result (the camera's output1 body, read as the `DisplayInput` contract);
    MalformedMessage if it is not one."""
    try:
        message = parse(DisplayInput, body)
    except ContractError as exc:
        raise MalformedMessage(str(exc)) from None
    return [Scored(p.tagName, p.probability) for p in message.predictions]


def top(predictions: Sequence[Scored]) -> Scored | None:
    """The most probable prediction (the first of equals, as the scorer lists them)."""
    best = None
    for scored in predictions:
        if best is None or scored.probability > best.probability:
            best = scored
    return best


class Composer:
    """Turns predictions into a Scene with the current settings and icons."""

    def __init__(self, settings: DisplaySettings, icons: IconSet) -> None:
        self.settings = settings
        self.icons = icons

    def compose(self, predictions: Sequence[Scored] | None) -> Scene:
        """`None` = nothing received yet."""
        best = top(predictions or [])
        if best is None or best.probability <= self.settings.threshold:
            frame = self.icons.idle.copy() if self.settings.idle == "pattern" else blank()
            return Scene("idle", self._finish(frame), best.tag if best else None, best.probability if best else None)
        picture = self.icons.picture(best.tag)
        return Scene(picture.kind, self._finish(picture.frame), best.tag, best.probability, picture.name)

    def _finish(self, frame: np.ndarray) -> np.ndarray:
        if self.settings.brightness < 1.0:
            frame = np.rint(frame.astype(np.float32) * self.settings.brightness).astype(np.uint8)
        # clockwise, the way SenseHat.set_rotation turns the picture
        return np.ascontiguousarray(np.rot90(frame, k=-self.settings.rotation // 90))
