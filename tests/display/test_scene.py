"""The display logic fed with real scoring results: the 64 pixels for the top tag, the threshold, aliases, the
unknown-tag fallback, brightness, rotation, and malformed messages that change nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgevision.display.module import Display, DisplayModule
from edgevision.display.settings import DisplaySettings
from edgevision.hub import Hub, InputMessage


def make_display(**settings) -> Display:
    return Display(DisplaySettings(**settings), outputs=[])


def test_zebra_photo_lights_the_zebra_icon(camera_message, top, icon_pixels) -> None:
    message = camera_message("zebra")
    tag, probability = top(message)
    assert tag == "zebra" and probability > 0.6
    scene = make_display().receive(message)
    assert scene.kind == "icon" and scene.icon == "zebra"
    assert np.array_equal(scene.frame, icon_pixels("zebra"))


@pytest.mark.parametrize(("photo", "icon"), [("elephant", "elephant"), ("dog", "dog")])
def test_imagenet_names_reach_their_icon_through_aliases(photo, icon, camera_message, top, icon_pixels) -> None:
    message = camera_message(photo)
    tag, probability = top(message)
    assert tag != icon and probability > 0.6  # e.g. "African elephant", "malamute": only an alias can match
    scene = make_display().receive(message)
    assert (scene.kind, scene.icon, scene.tag) == ("icon", icon, tag)
    assert np.array_equal(scene.frame, icon_pixels(icon))


def test_below_threshold_shows_the_idle_pattern_or_nothing(camera_message, top, icon_pixels) -> None:
    message = camera_message("horses")
    tag, probability = top(message)
    assert probability <= 0.6, f"the horses photo now scores {tag} {probability}: pick another photo"
    scene = make_display().receive(message)
    assert scene.kind == "idle" and scene.tag == tag
    assert np.array_equal(scene.frame, icon_pixels("idle"))
    cleared = make_display(idle="clear").receive(message)
    assert not cleared.frame.any()


def test_unknown_tag_shows_its_initial_in_a_fallback_colour(camera_message, top, glyph_mask) -> None:
    message = camera_message("wild dogs")
    tag, probability = top(message)  # "African hunting dog": a wild canine, deliberately not a dog breed
    assert probability > 0.6
    display = make_display()
    assert display.icons.icon_for(tag) is None
    scene = display.receive(message)
    initial = tag[0].upper()
    assert (scene.kind, scene.icon) == ("initial", initial)
    lit = scene.frame.any(axis=2)
    assert np.array_equal(lit, glyph_mask(initial))
    colours = {tuple(p) for p in scene.frame[lit].tolist()}
    assert len(colours) == 1 and colours.pop() in display.icons.fallback_colours
    assert (scene.frame[lit] != (255, 0, 0)).any()  # not the sample's red '?'


def test_threshold_changes_live_and_redraws_the_last_result(camera_message, top, icon_pixels) -> None:
    message = camera_message("elephant")
    _, probability = top(message)
    display = make_display()
    assert display.receive(message).icon == "elephant"
    display.reconfigure({"THRESHOLD": min(1.0, probability + 0.01)})
    assert display.scene.kind == "idle"
    display.reconfigure({"threshold": max(0.0, probability - 0.01)})  # field names work too
    assert np.array_equal(display.scene.frame, icon_pixels("elephant"))


def test_invalid_patch_keeps_the_previous_settings(camera_message) -> None:
    display = make_display(threshold=0.5)
    display.receive(camera_message("zebra"))
    before = display.scene.frame.copy()
    kept = display.reconfigure({"THRESHOLD": 7, "ROTATION": 90})
    assert kept.threshold == 0.5 and kept.rotation == 0
    assert np.array_equal(display.scene.frame, before)


def test_brightness_scales_every_colour(camera_message, icon_pixels) -> None:
    scene = make_display(brightness=0.25).receive(camera_message("zebra"))
    expected = np.rint(icon_pixels("zebra").astype(float) * 0.25).astype(np.uint8)
    assert np.array_equal(scene.frame, expected)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_turns_the_picture_clockwise(rotation, camera_message, icon_pixels) -> None:
    scene = make_display(rotation=rotation).receive(camera_message("dog"))
    original = icon_pixels("dog")
    turned = original
    for _ in range(rotation // 90):  # one clockwise quarter turn: (row, col) -> (col, 7 - row)
        quarter = np.zeros_like(turned)
        for row in range(8):
            for col in range(8):
                quarter[col, 7 - row] = turned[row, col]
        turned = quarter
    assert np.array_equal(scene.frame, turned)


MALFORMED = [
    b"not json at all",
    b"\xff\xfe binary",
    b"[1, 2, 3]",
    b'{"topTag": "zebra"}',
    b'{"predictions": "zebra"}',
    b'{"predictions": [{"tagName": "zebra", "probability": "0.99"}]}',
    b'{"predictions": [{"tagName": "zebra", "probability": true}]}',
    b'{"predictions": [{"tagName": 7, "probability": 0.99}]}',
    b'{"predictions": [{"tagName": "zebra", "probability": 1.5}]}',
    b'{"predictions": [{"tagName": "zebra", "probability": NaN}]}',
    b'{"predictions": ["zebra"]}',
]


class RecordingHub(Hub):
    """The Hub interface without IoT Edge: records reports and hands messages to the module directly.
    (The module over a real ModuleClient and MQTT broker is the local runtime's end-to-end test.)"""

    def __init__(self, desired: dict | None = None) -> None:
        self._desired = desired or {}
        self.reports: list[dict] = []
        self.input_handler = self.desired_handler = None

    def send(self, output, body, properties=None) -> None:
        raise AssertionError("the display sends nothing")

    def on_input(self, handler) -> None:
        self.input_handler = handler

    def on_desired(self, handler) -> None:
        self.desired_handler = handler

    def desired(self) -> dict:
        return dict(self._desired)

    def report(self, properties) -> None:
        self.reports.append(dict(properties))


def test_malformed_messages_are_skipped_and_the_last_good_picture_stays(camera_message, icon_pixels) -> None:
    hub = RecordingHub()
    module = DisplayModule(make_display(), hub)
    module.start()
    good = json.dumps(camera_message("zebra")).encode()
    hub.input_handler(InputMessage("input1", good))
    for body in MALFORMED:
        hub.input_handler(InputMessage("input1", body))
        assert np.array_equal(module.display.scene.frame, icon_pixels("zebra")), body
    assert (module.display.messages, module.display.skipped) == (1 + len(MALFORMED), len(MALFORMED))


def test_only_input1_is_shown(camera_message, icon_pixels) -> None:
    hub = RecordingHub()
    module = DisplayModule(make_display(), hub)
    module.start()
    hub.input_handler(InputMessage("input2", json.dumps(camera_message("zebra")).encode()))
    assert np.array_equal(module.display.scene.frame, icon_pixels("idle"))
    assert module.display.messages == 0


def test_desired_properties_apply_at_start_and_live_and_are_reported(camera_message) -> None:
    hub = RecordingHub(desired={"THRESHOLD": 0.95, "BRIGHTNESS": 0.5})
    module = DisplayModule(make_display(), hub)
    module.start()
    assert hub.reports[-1]["THRESHOLD"] == 0.95 and hub.reports[-1]["BRIGHTNESS"] == 0.5
    assert hub.reports[-1]["activeBackend"] == "render"
    hub.input_handler(InputMessage("input1", json.dumps(camera_message("elephant")).encode()))
    assert module.display.scene.kind == "idle"  # the elephant scores below 0.95
    hub.desired_handler({"threshold": 0.6, "DISPLAY_BACKEND": "sense_hat"})  # the backend is fixed at start
    assert module.display.scene.icon == "elephant"
    assert hub.reports[-1]["THRESHOLD"] == 0.6 and hub.reports[-1]["DISPLAY_BACKEND"] == "auto"


def test_an_empty_prediction_list_is_valid_and_idle(icon_pixels) -> None:
    scene = make_display().receive({"predictions": []})
    assert scene.kind == "idle" and np.array_equal(scene.frame, icon_pixels("idle"))


def test_settings_errors_name_the_variable() -> None:
    from edgevision.config import ConfigError

    for env, name in [({"THRESHOLD": "1.5"}, "THRESHOLD"), ({"ROTATION": "45"}, "ROTATION"), ({"IDLE": "x"}, "IDLE")]:
        with pytest.raises(ConfigError, match=name):
            DisplaySettings.from_env(env)
    assert DisplaySettings.from_env({"ROTATION": "270", "THRESHOLD": "0.75"}).rotation == 270


def test_icons_reload_when_a_patch_names_a_new_file(tmp_path, camera_message, icon_pixels) -> None:
    aliases = tmp_path / "aliases.json"
    aliases.write_text(json.dumps({"horse": ["zebra"]}))
    display = make_display()
    display.receive(camera_message("zebra"))
    display.reconfigure({"ALIASES_FILE": str(aliases)})
    assert display.scene.icon == "horse"  # a user's alias moves even an icon's own name
    assert np.array_equal(display.scene.frame, icon_pixels("horse"))
    display.reconfigure({"ALIASES_FILE": str(tmp_path / "missing.json")})
    assert display.settings.aliases_file == aliases  # a missing file is logged, the previous icons stay
    assert display.scene.icon == "horse"


def test_a_rejected_desired_patch_at_start_still_draws_and_reports(icon_pixels) -> None:
    hub = RecordingHub(desired={"THRESHOLD": "often"})
    module = DisplayModule(make_display(), hub)
    module.start()
    assert np.array_equal(module.display.scene.frame, icon_pixels("idle"))
    assert hub.reports[-1]["THRESHOLD"] == 0.6
