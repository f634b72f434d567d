"""The outputs, read back: PNG frames from disk, terminal blocks from the stream, the Sense HAT framebuffer
layout from a file, and the official emulator's shared-memory LED state with its servers started headless."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgevision.display.backends import open_outputs
from edgevision.display.backends.render import PngOutput, TerminalOutput, cell_centre
from edgevision.display.backends.sensehat import FB_NAME, SenseFramebuffer, emulator_running
from edgevision.display.module import Display
from edgevision.display.settings import DisplaySettings


def decode_rgb565(raw: bytes) -> np.ndarray:
    """64 native-endian RGB565 pixels -> 8x8x3, expanded as the SenseHat API's get_pixels does."""
    values = np.array(struct.unpack("64H", raw), dtype=np.uint16)
    rgb = np.stack([(values >> 11) << 3, ((values >> 5) & 0x3F) << 2, (values & 0x1F) << 3], axis=1)
    return rgb.reshape(8, 8, 3).astype(np.uint8)


def quantized(frame: np.ndarray) -> np.ndarray:
    """What RGB565 keeps of a colour."""
    return frame & np.array([0xF8, 0xFC, 0xF8], dtype=np.uint8)


def test_png_renderer_writes_the_matrix_with_a_grid(tmp_path, camera_message) -> None:
    png = PngOutput(tmp_path, history=10, scale=24)
    display = Display(DisplaySettings(), [png])
    scene = display.receive(camera_message("zebra"))
    image = Image.open(tmp_path / "current.png").convert("RGB")
    assert image.size == (8 * 24, 8 * 24)
    for row in range(8):
        for col in range(8):
            assert image.getpixel(cell_centre(row, col, 24)) == tuple(scene.frame[row, col]), (row, col)
    grid = image.getpixel((0, 0))
    assert grid not in {(0, 0, 0), (255, 255, 255)} and grid == image.getpixel((24, 100))
    state = json.loads((tmp_path / "current.json").read_text())
    assert (state["kind"], state["icon"], state["tag"], state["sequence"]) == ("icon", "zebra", "zebra", 1)
    assert np.array_equal(np.array(state["pixels"], dtype=np.uint8).reshape(8, 8, 3), scene.frame)
    assert (tmp_path / state["frame"]).read_bytes() == (tmp_path / "current.png").read_bytes()


def test_png_history_is_capped_and_only_changes_are_written(tmp_path, camera_message) -> None:
    display = Display(DisplaySettings(), [PngOutput(tmp_path, history=3, scale=8)])
    for name in ["zebra", "zebra", "elephant", "elephant", "dog", "horses", "zebra"]:
        display.receive(camera_message(name))
    # 5 changes (repeats draw nothing), the newest 3 kept
    frames = sorted(p.name for p in tmp_path.glob("frame-*.png"))
    assert frames == ["frame-000003.png", "frame-000004.png", "frame-000005.png"]
    restarted = PngOutput(tmp_path, history=3, scale=8)
    Display(DisplaySettings(), [restarted]).show(None)  # a restart continues the numbering
    assert restarted.sequence == 6 and (tmp_path / "frame-000006.png").exists()
    assert len(list(tmp_path.glob("frame-*.png"))) == 3


def test_terminal_prints_one_truecolour_block_per_change(camera_message) -> None:
    stream = io.StringIO()
    display = Display(DisplaySettings(), [TerminalOutput(stream)])
    display.receive(camera_message("dog"))
    display.receive(camera_message("dog"))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 8  # the dog once
    cells = [re.findall(r"\x1b\[48;2;(\d+);(\d+);(\d+)m  ", line) for line in lines]
    shown = np.array(cells, dtype=np.uint8)
    assert shown.shape == (8, 8, 3) and np.array_equal(shown, display.scene.frame)
    assert all(line.endswith("\x1b[0m") for line in lines)


def test_sense_hat_framebuffer_layout_and_discovery(tmp_path, camera_message) -> None:
    sysfs, dev = tmp_path / "sys", tmp_path / "dev"
    for name, driver in [("fb0", "simple"), ("fb1", FB_NAME)]:
        (sysfs / name).mkdir(parents=True)
        (sysfs / name / "name").write_text(driver + "\n")
    dev.mkdir()
    (dev / "fb1").write_bytes(bytes(128))
    device = SenseFramebuffer.find(sysfs, dev)
    assert device == dev / "fb1"
    output = SenseFramebuffer(device)
    display = Display(DisplaySettings(), [output])
    scene = display.receive(camera_message("elephant"))
    assert np.array_equal(decode_rgb565(device.read_bytes()), quantized(scene.frame))
    display.close()
    assert device.read_bytes() == bytes(128)


def test_auto_falls_back_to_the_renderer_and_says_why(tmp_path, caplog) -> None:
    if emulator_running() or SenseFramebuffer.find() or importlib.util.find_spec("sense_hat"):
        pytest.skip("this machine has a Sense HAT or a running emulator: auto would use it")
    settings = DisplaySettings(render_dir=tmp_path / "frames", terminal_blocks=False)
    with caplog.at_level("INFO", logger="edgevision.display"):
        name, outputs = open_outputs(settings)
    assert name == "render" and [o.name for o in outputs] == ["png"]
    lines = [r.getMessage() for r in caplog.records if "display backend" in r.getMessage()]
    assert len(lines) == 1 and "render" in lines[0] and "sense_hat unavailable" in lines[0]


SCREEN = Path("/dev/shm/rpi-sense-emu-screen")


@pytest.fixture
def emulator_screen():
    pytest.importorskip("sense_emu")
    from sense_emu.lock import lock_filename
    from sense_emu.screen import GAMMA_DEFAULT, GAMMA_LOW, screen_filename

    if emulator_running():
        pytest.skip("a Sense HAT emulator is already running on this machine")
    yield Path(screen_filename()), GAMMA_DEFAULT, GAMMA_LOW
    assert not Path(lock_filename()).exists(), "the emulator lock was left behind"


def test_emulator_runs_headless_and_its_leds_read_back(emulator_screen, camera_message) -> None:
    screen, gamma_default, gamma_low = emulator_screen
    from sense_emu.lock import lock_filename

    settings = DisplaySettings(display_backend="sense_emu", low_light=True)
    name, outputs = open_outputs(settings)
    assert name == "sense_emu"
    display = Display(settings, outputs, name)
    try:
        assert Path(lock_filename()).read_text().strip() == str(os.getpid())  # our servers, no GUI spawned
        scene = display.receive(camera_message("zebra"))
        raw = screen.read_bytes()
        assert np.array_equal(decode_rgb565(raw[:128]), quantized(scene.frame))
        assert list(raw[128:160]) == gamma_low
        display.reconfigure({"LOW_LIGHT": False, "ROTATION": 90})
        raw = screen.read_bytes()
        assert list(raw[128:160]) == gamma_default
        assert np.array_equal(decode_rgb565(raw[:128]), quantized(display.scene.frame))
        # our rotation agrees with the emulator library's own set_rotation(90) on the unrotated picture
        from sense_emu import SenseHat

        reference = SenseHat()
        reference.set_rotation(90, redraw=False)
        upright = Display(DisplaySettings(), []).receive(camera_message("zebra")).frame
        reference.set_pixels(upright.reshape(64, 3).tolist())
        assert screen.read_bytes()[:128] == raw[:128]
        reference.stick.close()
    finally:
        display.close()
    assert screen.read_bytes()[:128] == bytes(128)  # CLEAR_ON_EXIT
    assert not (screen.parent / f"rpi-sense-emu-client-{os.getpid()}").exists()  # no leftover socket


def test_sense_hat_backend_uses_a_named_framebuffer_or_falls_back(tmp_path, caplog, camera_message) -> None:
    device = tmp_path / "fb1"
    device.write_bytes(bytes(128))
    name, outputs = open_outputs(DisplaySettings(display_backend="sense_hat", sensehat_fb=device))
    assert name == "sense_hat" and isinstance(outputs[0], SenseFramebuffer)
    display = Display(DisplaySettings(clear_on_exit=False), outputs, name)
    scene = display.receive(camera_message("dog"))
    display.close()
    assert np.array_equal(decode_rgb565(device.read_bytes()), quantized(scene.frame))
    with caplog.at_level("INFO", logger="edgevision.display"):
        name, outputs = open_outputs(
            DisplaySettings(display_backend="sense_hat", sensehat_fb=tmp_path / "gone", terminal_blocks=False)
        )
    assert name == "render" and outputs == []
    message = next(r.getMessage() for r in caplog.records if "display backend" in r.getMessage())
    assert "sense_hat unavailable" in message and "gone" in message and "only logged" in message
