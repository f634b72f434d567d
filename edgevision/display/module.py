"""The SenseHatDisplay module: scoring results in on `input1`, the top tag's icon out on the LEDs.

Messages and twin patches arrive on the SDK's threads; one lock keeps the state (settings, icons, the last
good predictions, what is lit) consistent. A bad message or a bad patch is logged and changes nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgevision.config import ConfigError
from edgevision.display.backends import Output
from edgevision.display.icons import IconFileError, IconSet
from edgevision.display.scene import Composer, MalformedMessage, Scene, Scored, parse_predictions
from edgevision.display.settings import DisplaySettings
from edgevision.hub import Hub, InputMessage

log = logging.getLogger("edgevision.display")

INPUT = "input1"
MODULE = "sensehat-display"


class Display:
    """Settings + icons + outputs: decides the picture and draws it when it changes."""

    def __init__(
        self,
        settings: DisplaySettings,
        outputs: Sequence[Output],
        backend: str = "render",
        icons: IconSet | None = None,
    ) -> None:
        self.settings = settings
        self.icons = icons or IconSet.load(settings.icons_file, settings.aliases_file)
        self.outputs = list(outputs)
        self.backend = backend
        self.predictions: list[Scored] | None = None  # the last good message's, None before the first
        self.scene: Scene | None = None
        self.messages = self.skipped = 0
        self._lock = threading.RLock()
        self._set_low_light(settings.low_light)

    def show(self, predictions: list[Scored] | None) -> Scene:
        """Draw what these predictions call for (redrawn only when the pixels change)."""
        with self._lock:
            self.predictions = predictions
            scene = Composer(self.settings, self.icons).compose(predictions)
            if self.scene is None or not np.array_equal(scene.frame, self.scene.frame):
                log.info("showing %s", scene.describe())
                for output in self.outputs:
                    try:
                        output.show(scene)
                    except Exception as exc:  # one failing output must not blank the others
                        log.warning("display: %s output failed: %s", output.name, exc)
            self.scene = scene
            return scene

    def receive(self, body: Any) -> Scene | None:
        """A message body (parsed JSON): shown if it is a scoring result, else logged and skipped."""
        with self._lock:
            self.messages += 1
            try:
                predictions = parse_predictions(body)
            except MalformedMessage as exc:
                self.reject(f"not a scoring result: {exc}", counted=True)
                return None
            return self.show(predictions)

    def reject(self, reason: str, counted: bool = False) -> None:
        """Count and log a skipped message; what is lit stays as it was."""
        with self._lock:
            self.messages += 0 if counted else 1
            self.skipped += 1
        log.warning("skipped a message (%s); still showing the last good result", reason)

    def reconfigure(self, changes: Mapping[str, Any]) -> DisplaySettings:
        """Apply a twin patch; invalid values or icon files are logged and the previous settings kept."""
        with self._lock:
            try:
                settings = self.settings.updated(changes)
                icons = self.icons
                files = (settings.icons_file, settings.aliases_file)
                if files != (self.settings.icons_file, self.settings.aliases_file):
                    icons = IconSet.load(*files)
            except (ConfigError, IconFileError) as exc:
                log.error("desired properties not applied: %s", exc)
                return self.settings
            if settings.low_light != self.settings.low_light:
                self._set_low_light(settings.low_light)
            self.settings, self.icons = settings, icons
            self.show(self.predictions)
            return settings

    def close(self) -> None:
        with self._lock:
            for output in self.outputs:
                try:
                    output.close(self.settings.clear_on_exit)
                except Exception as exc:
                    log.warning("display: closing %s: %s", output.name, exc)
            self.outputs = []

    def _set_low_light(self, enabled: bool) -> None:
        for output in self.outputs:
            try:
                output.set_low_light(enabled)
            except Exception as exc:
                log.warning("display: %s: low light not set: %s", output.name, exc)


class DisplayModule:
    """A Display wired to the hub: `input1` messages, desired properties in, effective settings reported."""

    def __init__(self, display: Display, hub: Hub) -> None:
        self.display = display
        self.hub = hub

    def start(self) -> None:
        desired = self.hub.desired()
        if desired:
            self.display.reconfigure(desired)
        if self.display.scene is None:  # no twin, or a patch that was rejected
            self.display.show(None)
        self.report()
        self.hub.on_desired(self.on_desired)
        self.hub.on_input(self.on_input)

    def on_input(self, message: InputMessage) -> None:
        if message.input_name != INPUT:
            log.debug("ignored a message on input %r (only %s is shown)", message.input_name, INPUT)
            return
        try:
            body = message.json()
        except ValueError as exc:
            self.display.reject(f"not JSON: {exc}")
            return
        self.display.receive(body)

    def on_desired(self, patch: dict[str, Any]) -> None:
        self.display.reconfigure(patch)
        self.report()

    def report(self) -> None:
        self.hub.report({**self.display.settings.reported(), "activeBackend": self.display.backend})
