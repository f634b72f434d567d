"""The typed settings base every module uses: env parsing, twin updates, errors that name the variable."""

from __future__ import annotations

import pytest
from pydantic import Field

from edgevision.config import ConfigError, Settings


class ExampleSettings(Settings):
    threshold: float = Field(0.6, ge=0.0, le=1.0, description="minimum probability")
    show_video: bool = Field(False, description="serve the live viewer")
    video_path: str = Field("0", json_schema_extra={"env": "VIDEO_PATH"}, description="source")
    port: int = Field(5012, description="listen port")

    static_fields = frozenset({"port"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("Yes", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("NO", False),
    ],
)
def test_booleans_accept_common_spellings(raw: str, expected: bool) -> None:
    assert ExampleSettings.from_env({"SHOW_VIDEO": raw}).show_video is expected


def test_invalid_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"SHOW_VIDEO.*'maybe'"):
        ExampleSettings.from_env({"SHOW_VIDEO": "maybe"})
    with pytest.raises(ConfigError, match="THRESHOLD"):
        ExampleSettings.from_env({"THRESHOLD": "1.5"})


def test_unknown_env_is_ignored_and_empty_means_default() -> None:
    settings = ExampleSettings.from_env({"THRESHOLD": "", "UNRELATED": "x"})
    assert settings.threshold == 0.6


def test_twin_update_by_variable_or_field_name_any_case() -> None:
    settings = ExampleSettings.from_env({})
    updated = settings.updated({"threshold": 0.8, "SHOW_VIDEO": "yes", "$version": 4, "Unknown": 1})
    assert (updated.threshold, updated.show_video) == (0.8, True)
    assert settings.threshold == 0.6  # the original is untouched


def test_twin_update_cannot_change_static_fields_and_validates() -> None:
    settings = ExampleSettings.from_env({})
    assert settings.updated({"PORT": 1}).port == 5012
    with pytest.raises(ConfigError, match="THRESHOLD"):
        settings.updated({"THRESHOLD": "high"})


def test_reported_properties_are_keyed_by_variable_name() -> None:
    reported = ExampleSettings.from_env({"VIDEO_PATH": "clip.avi"}).reported()
    assert reported == {"THRESHOLD": 0.6, "SHOW_VIDEO": False, "VIDEO_PATH": "clip.avi", "PORT": 5012}
