"""The LED matrix: the Sense HAT on a Pi, or the official Sense HAT emulator (`sense_emu`), headless here.

Both libraries share the SenseHat API. The official `sense_hat` library insists on RTIMU, I2C and the joystick
device even to light LEDs, so when it cannot start but the Sense HAT framebuffer exists, the LEDs are driven
through the framebuffer directly (64 RGB565 pixels, gamma by ioctl), which needs nothing but /dev/fbN.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgevision.display.backends.base import BackendUnavailable, Output, pixel_list
from edgevision.display.scene import Scene

log = logging.getLogger(__name__)

FB_NAME = "RPi-Sense FB"
FBIORESET_GAMMA = 61698  # the rpi-sense-fb driver's ioctl: argument 0 = default gamma, 1 = low light


class SenseHatLibrary(Output):
    """A SenseHat object from `sense_hat` or `sense_emu`."""

    def __init__(self, name: str, hat: Any) -> None:
        self.name = name
        self.hat = hat

    def show(self, scene: Scene) -> None:
        self.hat.set_pixels(pixel_list(scene))

    def set_low_light(self, enabled: bool) -> None:
        self.hat.low_light = enabled

    def close(self, clear: bool) -> None:
        if clear:
            with contextlib.suppress(Exception):
                self.hat.clear()
        stick = getattr(self.hat, "_stick", None)
        if stick is not None:
            with contextlib.suppress(Exception):
                stick.close()


class SenseFramebuffer(Output):
    """The Sense HAT's LED framebuffer written directly: 8x8 RGB565, row by row."""

    name = "sense_hat"

    def __init__(self, device: Path) -> None:
        self.device = Path(device)
        # Open once: a container may drop the rights to reopen, and writes stay cheap.
        self._file = open(self.device, "r+b", buffering=0)  # noqa: SIM115 - held until close()

    @staticmethod
    def find(sysfs: Path = Path("/sys/class/graphics"), dev: Path = Path("/dev")) -> Path | None:
        """The /dev/fbN whose driver name is the Sense HAT's, if any."""
        for entry in sorted(sysfs.glob("fb*")):
            try:
                name = (entry / "name").read_text().strip()
            except OSError:
                continue
            if name == FB_NAME and (dev / entry.name).exists():
                return dev / entry.name
        return None

    def show(self, scene: Scene) -> None:
        self._file.seek(0)
        self._file.write(rgb565(scene.frame).tobytes())

    def set_low_light(self, enabled: bool) -> None:
        try:
            fcntl.ioctl(self._file.fileno(), FBIORESET_GAMMA, 1 if enabled else 0)
        except OSError as exc:  # not the real driver (a plain file in a test): nothing to switch
            log.debug("low light not set on %s: %s", self.device, exc)

    def close(self, clear: bool) -> None:
        if clear:
            with contextlib.suppress(OSError):
                self._file.seek(0)
                self._file.write(bytes(128))
        self._file.close()


def rgb565(frame: np.ndarray) -> np.ndarray:
    """8x8x3 uint8 -> 64 native-endian uint16, packed as the Sense HAT (and its emulator) store pixels."""
    rgb = frame.reshape(64, 3).astype(np.uint16)
    return ((rgb[:, 0] >> 3) << 11) | ((rgb[:, 1] >> 2) << 5) | (rgb[:, 2] >> 3)


def open_sense_hat(device: Path | None = None) -> Output:
    """The real Sense HAT: its library when it starts, else its framebuffer (`device`, or found) directly."""
    try:
        from sense_hat import SenseHat
    except ImportError as exc:  # off a Pi: RTIMU (the IMU library) is missing, or sense-hat is not installed
        library_problem = f"sense_hat library not importable ({exc})"
    else:
        try:
            return SenseHatLibrary("sense_hat", SenseHat())
        except Exception as exc:  # OSError (no framebuffer/I2C), RuntimeError (no joystick device), ...
            library_problem = f"sense_hat library failed: {exc}"
    device = device or SenseFramebuffer.find()
    if device is None:
        raise BackendUnavailable(f"{library_problem}; no '{FB_NAME}' framebuffer under /sys/class/graphics")
    try:
        output = SenseFramebuffer(device)
    except OSError as exc:
        raise BackendUnavailable(f"{library_problem}; cannot open {device}: {exc}") from None
    log.info("%s; driving the LEDs through %s", library_problem, device)
    return output


def emulator_running() -> bool:
    """True when a live process (sense_emu_gui, or another display) holds the emulator's lock."""
    try:
        from sense_emu.lock import EmulatorLock
    except ImportError:
        return False
    return EmulatorLock("edgevision-display").wait(0)


class HeadlessEmulator:
    """The emulator's servers (IMU, pressure, humidity, joystick) without its GTK window.

    Holding the emulator's lock is what stops `sense_emu.SenseHat()` from spawning `sense_emu_gui`; the LED
    state lives in a 160-byte shared-memory file (64 RGB565 pixels + a 32-byte gamma table) that any emulator
    client, including a GUI started later, reads.
    """

    def __init__(self) -> None:
        from sense_emu.humidity import HumidityServer
        from sense_emu.imu import IMUServer
        from sense_emu.lock import EmulatorLock
        from sense_emu.pressure import PressureServer
        from sense_emu.stick import StickServer

        self.lock = EmulatorLock("edgevision-display")
        self.lock.acquire()
        self.servers: list[Any] = []
        try:
            # No simulated noise or world motion: nothing reads the sensors, so no busy threads.
            self.servers.append(IMUServer(simulate_world=False))
            self.servers.append(PressureServer(simulate_noise=False))
            self.servers.append(HumidityServer(simulate_noise=False))
            self.servers.append(StickServer())
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        for server in reversed(self.servers):
            with contextlib.suppress(Exception):
                server.close()
        self.servers.clear()
        if self.lock.mine:
            self.lock.release()


class SenseEmuOutput(SenseHatLibrary):
    """The official emulator's SenseHat; owns a headless emulator when none was running."""

    def __init__(self, hat: Any, emulator: HeadlessEmulator | None) -> None:
        super().__init__("sense_emu", hat)
        self.emulator = emulator

    def close(self, clear: bool) -> None:
        super().close(clear)
        # sense_emu never removes the joystick client socket its SenseHat binds for this process
        from sense_emu.stick import stick_address

        with contextlib.suppress(OSError, TypeError):
            Path(stick_address()[2]).with_name(f"rpi-sense-emu-client-{os.getpid()}").unlink(missing_ok=True)
        if self.emulator is not None:
            self.emulator.close()


def open_sense_emu(start_headless: bool = True) -> Output:
    """The emulator's SenseHat, starting its servers headless unless an emulator already runs."""
    try:
        import sense_emu  # noqa: F401 - probe only
    except ImportError as exc:
        hint = "pip install 'edgevision[display-emulator]'"
        raise BackendUnavailable(f"sense_emu not installed ({exc}; {hint})") from None
    emulator = None
    if not emulator_running():
        if not start_headless:
            raise BackendUnavailable("no Sense HAT emulator is running")
        try:
            emulator = HeadlessEmulator()
        except Exception as exc:
            raise BackendUnavailable(f"cannot start the emulator's servers: {exc}") from None
    try:
        from sense_emu import SenseHat

        hat = SenseHat()
    except Exception as exc:
        if emulator is not None:
            emulator.close()
        raise BackendUnavailable(f"sense_emu SenseHat failed: {exc}") from None
    where = "headless, started by this process" if emulator else f"attached to the running emulator (pid {_pid()})"
    log.info("sense_emu: %s; LED state in %s", where, hat._fb_device)
    return SenseEmuOutput(hat, emulator)


def _pid() -> str:
    from sense_emu.lock import lock_filename

    try:
        return Path(lock_filename()).read_text().strip() or "?"
    except OSError:
        return "?"
