"""`edgevision run --containers`: each module from its manifest's own image, run by Docker the way edgeAgent runs
it (createOptions' Binds, Devices, User, Init, GroupAdd; the manifest's env; restartPolicy and startupOrder
applied by the runtime, as edgeAgent applies them itself rather than through Docker's restart policy).

The brokers, routes, twins and workload API are the process mode's (edgevision/runtime/runner.py). Containers
use the host's network (`--network host`): no bridge is needed and the brokers stay on loopback addresses, so
PortBindings do not apply; every module name resolves to 127.0.0.1 (`--add-host`), and a listening edgevision
module gets a free port through its env as in process mode (`http://image-classifier-service:80` in another
module's env becomes `http://image-classifier-service:<port>`). The workload API's socket is bind-mounted where
IoT Edge mounts it (/var/run/iotedge/workload.sock), so the SDK's `create_from_edge_environment()` works as on
a device.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgevision.errors import EdgeVisionError
from edgevision.runtime.console import Console
from edgevision.runtime.images import BLOB_STORAGE, BUILTIN_IMAGES, image_key
from edgevision.runtime.manifest import Deployment, ModuleSpec
from edgevision.runtime.modules import ModuleProcess

WORKLOAD_DIR = "/var/run/iotedge"  # where IoT Edge mounts the workload socket into a module's container
WORKLOAD_URI = f"unix://{WORKLOAD_DIR}/workload.sock"
PROJECT = Path(__file__).resolve().parents[2]
# The images this project builds (scripts/images.sh): they take their listening ports from their env.
OWN_IMAGES = {local.name for local in BUILTIN_IMAGES.values() if local.name != BLOB_STORAGE}
PLATFORMS = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64v8", "arm64": "arm64v8", "armv7l": "arm32v7"}
_TEMPLATE = re.compile(r"\$\{MODULES\.([A-Za-z0-9_-]+)((?:\.[A-Za-z0-9_-]+)*)\}")
# createOptions the runtime cannot honour under host networking, or does itself; said once per module.
IGNORED = {
    "ExposedPorts": "host networking: every port is the host's",
    "PortBindings": "host networking: the module's port comes from its env instead",
    "LogConfig": "the runtime keeps the logs (logs/<module>.log)",
    "NetworkMode": "always host",
}
HOST_CONFIG = {"Binds", "Devices", "Init", "GroupAdd", "Privileged"}


class ContainerError(EdgeVisionError):
    """The modules cannot run as containers: no engine, or images missing."""


@dataclass(frozen=True)
class ContainerPlan:
    """How one module runs: as a container of `image` (as `user`), or, with `image` None, as a process."""

    image: str | None
    user: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


def docker(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise ContainerError("the docker command is not installed: run scripts/docker.sh") from None
    except subprocess.TimeoutExpired:
        raise ContainerError(f"docker {args[0]} did not answer within {timeout:g} s") from None


def engine_version() -> str:
    """The engine's version; ContainerError when none answers."""
    result = docker("version", "--format", "{{.Server.Version}}", timeout=20)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no answer"])[-1]
        raise ContainerError(f"no Docker engine answers ({last}): start one, e.g. scripts/docker.sh")
    return result.stdout.strip()


def host_platform() -> str:
    """The image platform of this machine (amd64, arm64v8, arm32v7), as the Dockerfiles name them."""
    machine = platform.machine().lower()
    if machine not in PLATFORMS:
        raise ContainerError(f"no image platform for machine {machine!r}: pass --platform")
    return PLATFORMS[machine]


def local_tag(image: str, manifest_dir: Path, default_platform: str) -> str:
    """`${MODULES.X[.debug][.<platform>]}` -> the tag scripts/images.sh gives X's image (its module.json's
    repository without the registry, `<version>-<platform>[.debug]`); any other image name as it is."""
    match = _TEMPLATE.fullmatch(image.strip())
    if not match:
        return image.strip()
    folder, suffixes = match.group(1), [s for s in match.group(2).split(".") if s]
    target = next((s for s in suffixes if s in PLATFORMS.values()), default_platform)
    debug = ".debug" if "debug" in suffixes else ""
    for root in (manifest_dir, PROJECT):
        path = root / "modules" / folder / "module.json"
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))["image"]
            repository = data["repository"].rsplit("/", 1)[-1]
            return f"{repository}:{data['tag']['version']}-{target}{debug}"
    raise ContainerError(f"image {image}: no modules/{folder}/module.json beside the manifest or in the project")


def image_user(tag: str) -> str | None:
    """The image's USER ("" = root), or None when the engine does not have the image."""
    result = docker("image", "inspect", "--format", "{{.Config.User}}", tag)
    return result.stdout.strip() if result.returncode == 0 else None


def plan(
    deployment: Deployment, manifest_dir: Path, target: str, overrides: Mapping[str, Sequence[str]]
) -> dict[str, ContainerPlan]:
    """How each module runs; ContainerError lists every module whose image the engine does not have."""
    plans, problems = {}, []
    for spec in deployment.modules.values():
        if _overridden(spec.image, overrides):  # `--image IMAGE=COMMAND`: the user asked for a process
            plans[spec.name] = ContainerPlan(None, notes=("runs as a process (--image)",))
            continue
        tag = local_tag(spec.image, manifest_dir, target)
        user = image_user(tag)
        if user is not None:
            plans[spec.name] = ContainerPlan(tag, str(spec.create.get("User") or user), _notes(spec.create))
        elif spec.local.name == BLOB_STORAGE:  # no registry to pull from: its local stand-in, Azurite
            plans[spec.name] = ContainerPlan(None, notes=(f"image {tag} is not on this engine: runs as Azurite",))
        else:
            problems.append(f"module {spec.name}: image {tag} is not on this engine ({how_to_get(spec.image, tag)})")
    if problems:
        raise ContainerError("; ".join(problems))
    return plans


def how_to_get(image: str, tag: str) -> str:
    """The command that puts a module's image on this engine: this project's images are built, others pulled."""
    match = _TEMPLATE.fullmatch(image.strip())
    if match is None:
        return f"docker pull {tag}"
    folder, platform = match.group(1), tag.rsplit("-", 1)[-1]  # amd64, arm32v7.debug, ...
    if platform.endswith(".debug"):  # scripts/images.sh builds the release Dockerfiles only
        return f"build it: docker build -f modules/{folder}/Dockerfile.{platform} -t {tag} ."
    return f"build it: scripts/images.sh build {platform} {folder}"


def _overridden(image: str, overrides: Mapping[str, Sequence[str]]) -> bool:
    return any(key == image or image_key(key) == image_key(image) for key in overrides)


def _notes(create: Mapping[str, Any]) -> tuple[str, ...]:
    notes = [f"createOptions {key} not applied: {why}" for key, why in IGNORED.items() if key in create]
    host = create.get("HostConfig") or {}
    notes += [f"HostConfig.{key} not applied: {IGNORED[key]}" for key in host if key in IGNORED]
    known = {*IGNORED, *HOST_CONFIG, "Env", "User", "HostConfig"}
    notes += [f"createOptions {key} not applied (not supported locally)" for key in create if key not in known]
    notes += [f"HostConfig.{key} not applied (not supported locally)" for key in host if key not in known]
    return tuple(notes)


def write_env_file(path: Path, env: Mapping[str, str]) -> Path:
    """`docker run --env-file`: values stay out of the process list. Docker reads one `KEY=VALUE` a line."""
    bad = [key for key, value in env.items() if "\n" in value or "\n" in key or "=" in key]
    if bad:
        raise ContainerError(
            f"env {', '.join(bad)}: a container's variable cannot hold a line break or '=' in its name"
        )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text("".join(f"{key}={value}\n" for key, value in env.items()), encoding="utf-8")
    path.chmod(0o600)
    return path


def owner(user: str) -> tuple[int, int] | None:
    """`10001`, `10001:44` -> (uid, gid); None for names (they exist only in the image) and root."""
    uid, _, gid = user.partition(":")
    if not uid.isdigit() or int(uid) == 0 or (gid and not gid.isdigit()):
        return None
    return int(uid), int(gid or uid)


def prepare_volume(folder: Path, user: str) -> None:
    """A named volume is a folder of the run; its container's user must write there, as in a Docker volume."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = owner(user)
    if ids is None or (folder.stat().st_uid, folder.stat().st_gid) == ids:
        return
    if os.geteuid() == 0:
        os.chown(folder, *ids)
    else:  # only root may give a folder away: let the container's user in instead
        folder.chmod(0o777)


def run_arguments(
    spec: ModuleSpec,
    container_plan: ContainerPlan,
    name: str,
    env_file: Path,
    volumes: Mapping[str, Path],
    workload_dir: Path,
    hosts: Sequence[str],
    labels: Mapping[str, str],
) -> list[str]:
    """`docker run` for one module: attached (its output is the module's log; SIGTERM reaches it), removed
    when it exits, the runtime restarting it by its policy."""
    assert container_plan.image is not None
    args = ["docker", "run", "--rm", "--name", name, "--network", "host", "--env-file", str(env_file)]
    args += [arg for host in hosts for arg in ("--add-host", f"{host}:127.0.0.1")]
    args += [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]
    args += ["-v", f"{workload_dir}:{WORKLOAD_DIR}"]
    host = spec.create.get("HostConfig") or {}
    for bind in host.get("Binds") or []:
        source, container, *options = str(bind).split(":")
        local = volumes.get(source, source)
        args += ["-v", ":".join([str(local), container, *options])]
    for device in host.get("Devices") or []:
        parts = [device.get("PathOnHost", ""), device.get("PathInContainer", ""), device.get("CgroupPermissions", "")]
        args += ["--device", ":".join(p for p in parts if p)]
    args += [arg for group in host.get("GroupAdd") or [] for arg in ("--group-add", str(group))]
    if host.get("Init"):
        args.append("--init")
    if host.get("Privileged"):
        args.append("--privileged")
    if container_plan.user:
        args += ["--user", container_plan.user]
    return [*args, container_plan.image]


HEALTH_EVERY = 5.0  # seconds between looks at a running container's Docker health status


class ContainerModule(ModuleProcess):
    """A module as `docker run` in the foreground: the runtime supervises the CLI as it supervises a process
    (exit code, restart policy, logs); stopping it removes the container whatever the CLI did.

    Its Docker health status (the image's HEALTHCHECK) is looked at and reported, never acted on: edgeAgent
    restarts a module by its restartPolicy only when its container is no longer running (IoT Edge's runtime
    maps Docker's `running` to running whatever the health check says), so an unhealthy container that keeps
    running is left running, here as on a device."""

    def __init__(
        self,
        spec: ModuleSpec,
        env: dict[str, str],
        log_path: Path,
        console: Console,
        container: str,
        arguments: list[str],
    ) -> None:
        super().__init__(spec, env, log_path, console)
        self.container = container
        self.arguments = arguments
        self.health = ""  # Docker's: "" (no health check, or not looked at yet), starting, healthy, unhealthy
        self._health_due = 0.0

    def command(self) -> list[str]:
        self.remove()  # a container of the previous start may still be there, holding its name
        self.health, self._health_due = "", 0.0
        return self.arguments

    def check_health(self, now: float) -> bool:
        """Look at the container's health status when due; True when it changed."""
        if now < self._health_due or self.poll() is not None:
            return False
        self._health_due = now + HEALTH_EVERY
        try:
            result = docker("inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", self.container)
        except ContainerError:
            return False  # the engine is slow to answer: look again next time
        if result.returncode != 0:
            return False  # not created yet, or already gone: the exit code will tell
        health, self.health = self.health, result.stdout.strip()
        return health != self.health

    def process_env(self) -> dict[str, str]:
        return dict(os.environ)  # the docker CLI's own environment; the module's is in its env file

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        self.remove()

    def remove(self) -> None:
        docker("rm", "-f", self.container, timeout=30)


__all__ = [
    "WORKLOAD_URI",
    "ContainerError",
    "ContainerModule",
    "ContainerPlan",
    "engine_version",
    "host_platform",
    "how_to_get",
    "local_tag",
    "plan",
    "prepare_volume",
    "run_arguments",
    "write_env_file",
]
