"""Configuration: the sample's variables and ours, parsed once; every error names its variable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgevision.capture.settings import CaptureSettings, SendMode
from edgevision.config import ConfigError


def parse(**env: str) -> CaptureSettings:
    return CaptureSettings.from_env({"VIDEO_PATH": "0", **env})


@pytest.mark.parametrize("variable", ["SHOW_VIDEO", "VERBOSE", "LOOP_VIDEO", "CONVERT_TO_GRAY", "KEEP_ASPECT_RATIO"])
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *[(raw, True) for raw in ("true", "TRUE", "1", "yes", "Yes", "YES")],
        *[(raw, False) for raw in ("false", "False", "0", "no", "NO", "nO")],
    ],
)
def test_booleans_accept_the_usual_spellings_in_any_case(variable: str, raw: str, expected: bool) -> None:
    assert getattr(parse(**{variable: raw}), variable.lower()) is expected


def test_the_sample_variables_and_ours_are_read() -> None:
    settings = parse(
        VIDEO_PATH="/dev/video1",
        IMAGE_PROCESSING_ENDPOINT="http://image-classifier-service:80/image",
        IMAGE_PROCESSING_PARAMS='{"application": "park", "n": 3}',
        RESIZE_WIDTH="320",
        RESIZE_HEIGHT="0",
        FRAME_RATE="2.5",
        JPEG_QUALITY="75",
        REQUEST_TIMEOUT="4",
        SEND_MODE="interval",
        CAPTURE_TAGS=" deer, Person ,dog,",
        CAPTURE_THRESHOLD="0.7",
        CAPTURE_MAX_MB="50",
    )
    assert settings.video_path == "/dev/video1"
    assert settings.image_processing_params == {"application": "park", "n": "3"}
    assert (settings.resize_width, settings.resize_height, settings.frame_rate) == (320, 0, 2.5)
    assert (settings.jpeg_quality, settings.request_timeout) == (75, 4.0)
    assert settings.send_mode is SendMode.INTERVAL
    assert settings.capture_tags == ["deer", "Person", "dog"]
    assert settings.captures("person") and settings.captures("DEER") and not settings.captures("cat")
    assert (settings.capture_threshold, settings.capture_max_mb) == (0.7, 50.0)


def test_params_may_also_be_a_query_string() -> None:
    assert parse(IMAGE_PROCESSING_PARAMS="application=park&store=false").image_processing_params == {
        "application": "park",
        "store": "false",
    }


def test_star_captures_every_tag() -> None:
    assert parse(CAPTURE_TAGS="*").captures("anything at all")
    assert not parse().captures("anything at all")


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("SHOW_VIDEO", "maybe"),
        ("RESIZE_WIDTH", "wide"),
        ("RESIZE_HEIGHT", "-5"),
        ("CAPTURE_THRESHOLD", "1.5"),
        ("SEND_MODE", "sometimes"),
        ("IMAGE_PROCESSING_PARAMS", "{not json"),
        ("IMAGE_PROCESSING_ENDPOINT", "image-classifier-service/image"),
        ("JPEG_QUALITY", "0"),
        ("VIEWER_PORT", "70000"),
    ],
)
def test_an_invalid_value_is_an_error_naming_the_variable(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        parse(**{variable: raw})


def test_twin_patches_change_settings_and_reported_uses_variable_names() -> None:
    settings = parse(CAPTURE_TAGS="deer")
    updated = settings.updated({"capture_tags": ["deer", "person"], "SEND_MODE": "every", "viewer_port": 1})
    assert updated.capture_tags == ["deer", "person"]
    assert updated.send_mode is SendMode.EVERY
    assert updated.viewer_port == 5012  # the viewer's socket is static
    reported = updated.reported()
    assert reported["CAPTURE_TAGS"] == "deer,person"
    assert reported["SEND_MODE"] == "every"
    assert set(reported) == set(CaptureSettings.env_names())


def test_the_prediction_key_is_never_reported() -> None:
    reported = parse(PREDICTION_KEY="s3cret").reported()
    assert "s3cret" not in str(reported)


def run_cli(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgevision", "capture"],
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"VIDEO_PATH": "clip.avi", "LOOP_VIDEO": "sometimes"}, "LOOP_VIDEO"),
        ({"VIDEO_PATH": "clip.avi", "CAPTURE_MAX_MB": "lots"}, "CAPTURE_MAX_MB"),
        ({}, "VIDEO_PATH"),
        ({"VIDEO_PATH": "/nonexistent/clip.avi"}, "VIDEO_PATH"),
    ],
)
def test_start_up_errors_are_one_line_naming_the_variable(env: dict[str, str], variable: str) -> None:
    result = run_cli(env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgevision capture: error: ") and variable in lines[0]
    assert "Traceback" not in result.stderr


def test_every_variable_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "capture.md").read_text("utf-8")
    missing = [name for name in CaptureSettings.env_names() if f"| `{name}` |" not in doc]
    assert not missing, f"docs/capture.md lacks {missing}"
