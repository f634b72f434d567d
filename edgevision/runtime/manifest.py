"""Deployment manifests: the template (`deployment.template.json` with `${MODULES.X}` and `$VAR`/`${VAR}`
placeholders) or an expanded manifest (`deployment.amd64.json`, or `az iot edge` format with `content`).

Everything is checked before anything starts; each problem names the file, the line and the reason.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgevision.errors import EdgeVisionError
from edgevision.runtime.images import ImageError, LocalImage, resolve_image
from edgevision.runtime.routes import Route, RouteError, parse_route

RESTART_POLICIES = ("never", "on-failure", "on-unhealthy", "always")
STATUSES = ("running", "stopped")
DEFAULT_STARTUP_ORDER = 4294967295  # IoT Edge's default: after every module that has one
# `$name` words of IoT Edge manifests that are not template variables.
RESERVED = {"edgeAgent", "edgeHub", "upstream", "body", "schema", "version", "metadata"}


class ManifestError(EdgeVisionError):
    """The manifest cannot run: every problem with its file, line and reason."""

    shown = 6

    def __init__(self, problems: Sequence[str]) -> None:
        more = len(problems) - self.shown
        super().__init__("; ".join(problems[: self.shown]) + (f" (and {more} more)" if more > 0 else ""))
        self.problems = list(problems)


@dataclass
class ModuleSpec:
    """One custom module of `$edgeAgent`."""

    name: str
    image: str
    local: LocalImage
    env: dict[str, str] = field(default_factory=dict)
    restart_policy: str = "always"
    status: str = "running"
    startup_order: int = DEFAULT_STARTUP_ORDER
    binds: list[tuple[str, str]] = field(default_factory=list)  # (host path or volume name, container path)
    create: dict[str, Any] = field(default_factory=dict)  # createOptions as parsed (`edgevision run --containers`)


@dataclass
class Deployment:
    """What the runtime runs: modules, routes of `$edgeHub` and each module twin's desired properties."""

    source: str
    modules: dict[str, ModuleSpec]
    routes: list[Route]
    desired: dict[str, dict[str, Any]]
    time_to_live: int | None = None

    def ordered_modules(self) -> list[ModuleSpec]:
        return sorted(self.modules.values(), key=lambda m: (m.startup_order, m.name))


# -- variables -----------------------------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """A `.env` file read with python-dotenv, as iotedgedev reads it (`KEY=VALUE`, quotes, `export`, `#` comments,
    `${VAR}` expansion); a line it cannot parse is an error naming the line, not silently skipped."""
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    text = path.read_text(encoding="utf-8")
    bad = [binding.original.line for binding in parse_stream(io.StringIO(text)) if binding.error]
    if bad:
        raise ManifestError([f"{path}:{line}: expected KEY=VALUE" for line in bad])
    values = dotenv_values(stream=io.StringIO(text))
    return {key: value for key, value in values.items() if value is not None}  # a bare `KEY` sets nothing


def template_variables(
    manifest: Path | None, env_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Variables for placeholders: the `.env` file (default: beside the manifest), overridden by the environment."""
    values: dict[str, str] = {}
    if env_file is None and manifest is not None and (manifest.parent / ".env").is_file():
        env_file = manifest.parent / ".env"
    if env_file is not None:
        if not env_file.is_file():
            raise ManifestError([f"{env_file}: env file not found"])
        values.update(read_env_file(env_file))
    values.update(os.environ if environ is None else environ)
    return values


_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def expand(data: Any, variables: Mapping[str, str], text: str, source: str) -> Any:
    """Replace placeholders in every string of the parsed manifest: `${VAR}` and upper-case `$VAR` must be
    defined; other `$name`s are replaced only when defined (`$edgeHub`, `$upstream`, `$body`... stay);
    `${MODULES.X}` is left for the image table. `$edgeAgent`'s runtime and system modules (registries,
    edgeAgent/edgeHub images) are not used locally and not expanded."""
    problems: list[str] = []

    def undefined(name: str, raw: str, path: list[str]) -> str:
        line, column = _locate(text, path, raw_needle=raw)
        problems.append(f"{source}:{line}:{column}: variable {name} is not defined (in .env or the environment)")
        return raw

    def replace(match: re.Match[str], path: list[str]) -> str:
        braced, bare = match.group(1), match.group(2)
        if braced is not None:
            name = braced.strip()
            if name.startswith(("MODULES.", "MODULEDIR<")):
                return match.group(0)
            return variables[name] if name in variables else undefined(name, match.group(0), path)
        if bare in variables and bare not in RESERVED:
            return variables[bare]
        if re.fullmatch(r"[A-Z][A-Z0-9_]*", bare):  # an upper-case $NAME is a template variable
            return undefined(bare, match.group(0), path)
        return match.group(0)  # $edgeHub, $upstream, $body, $connectionModuleId... are manifest syntax

    def walk(node: Any, path: list[str]) -> Any:
        if isinstance(node, dict):
            return {k: v if _unused(path, k) else walk(v, [*path, k]) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, path) for v in node]
        if isinstance(node, str):
            return _PLACEHOLDER.sub(lambda m: replace(m, path), node)
        return node

    expanded = walk(data, [])
    if problems:
        raise ManifestError(problems)
    return expanded


def _unused(path: list[str], key: str) -> bool:
    return key in ("runtime", "systemModules") and path[-2:] == ["$edgeAgent", "properties.desired"]


# -- parsing -------------------------------------------------------------------------------------------------


def load(
    path: Path,
    variables: Mapping[str, str] | None = None,
    images: Mapping[str, Sequence[str]] | None = None,
    containers: bool = False,
) -> Deployment:
    """Read, expand and check a manifest file; ManifestError lists every problem. With `containers`, an image
    needs no local entry point (it runs as a container; see edgevision/runtime/containers.py)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError([f"{path}: cannot read the manifest: {exc.strerror or exc}"]) from None
    if variables is None:
        variables = template_variables(path)
    return parse(text, str(path), variables, images, containers)


def parse(
    text: str,
    source: str = "manifest",
    variables: Mapping[str, str] | None = None,
    images: Mapping[str, Sequence[str]] | None = None,
    containers: bool = False,
) -> Deployment:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError([f"{source}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"]) from None
    data = expand(data, variables or {}, text, source)
    return _Checker(text, source, images, containers).deployment(data)


class _Checker:
    """Walks the parsed manifest, collecting problems with the line of the key they concern."""

    def __init__(
        self, text: str, source: str, images: Mapping[str, Sequence[str]] | None, containers: bool = False
    ) -> None:
        self.text = text
        self.source = source
        self.images = images
        self.containers = containers
        self.problems: list[str] = []
        self.declared: set[str] = set()

    def problem(self, keys: Sequence[str], reason: str, column_offset: int | None = None) -> None:
        line, column = _locate(self.text, keys, column_offset)
        where = f"{self.source}:{line}" + (f":{column}" if column_offset is not None else "")
        self.problems.append(f"{where}: {reason}")

    def deployment(self, data: Any) -> Deployment:
        content = data.get("content", data) if isinstance(data, dict) else None
        modules_content = content.get("modulesContent") if isinstance(content, dict) else None
        if not isinstance(modules_content, dict):
            raise ManifestError([f"{self.source}:1: not a deployment manifest: no modulesContent object"])
        agent = self._desired(modules_content, "$edgeAgent")
        hub = self._desired(modules_content, "$edgeHub")
        if self.problems:
            raise ManifestError(self.problems)
        modules = self._modules(agent.get("modules") or {})
        routes = self._routes(hub.get("routes") or {}, modules)
        desired = self._twins(modules_content, modules)
        ttl = (hub.get("storeAndForwardConfiguration") or {}).get("timeToLiveSecs")
        if not modules and not self.problems:
            self.problem(["$edgeAgent"], "no modules to run in $edgeAgent's modules")
        if self.problems:
            raise ManifestError(self.problems)
        return Deployment(self.source, modules, routes, desired, ttl if isinstance(ttl, int) else None)

    def _desired(self, modules_content: dict[str, Any], name: str) -> dict[str, Any]:
        entry = modules_content.get(name)
        desired = entry.get("properties.desired") if isinstance(entry, dict) else None
        if not isinstance(desired, dict):
            self.problem([name] if entry is not None else [], f'missing "{name}": {{"properties.desired": {{...}}}}')
            return {}
        return desired

    def _modules(self, raw: Any) -> dict[str, ModuleSpec]:
        modules: dict[str, ModuleSpec] = {}
        if not isinstance(raw, dict):
            self.problem(["$edgeAgent", '"modules"'], "$edgeAgent modules must be an object")
            return modules
        self.declared.update(raw)  # later checks know every declared module, even one with problems
        for name, spec in raw.items():
            where = ["$edgeAgent", '"modules"', name]
            if not isinstance(spec, dict):
                self.problem(where, f"module {name}: expected an object")
                continue
            module = self._module(name, spec, where)
            if module is not None:
                modules[name] = module
        return modules

    def _module(self, name: str, spec: dict[str, Any], where: list[str]) -> ModuleSpec | None:
        settings = spec.get("settings") if isinstance(spec.get("settings"), dict) else {}
        image = settings.get("image")
        if not isinstance(image, str) or not image.strip():
            self.problem(where, f"module {name}: settings.image is missing")
            return None
        try:
            local = resolve_image(image, self.images)
        except ImageError as exc:
            if not self.containers:
                self.problem([*where, '"image"'], f"module {name}: {exc}")
                return None
            local = LocalImage(image, ())  # a container only: no local entry point, no known listeners
        if (local.command and not shutil.which(local.command[0])) or not (local.command or self.containers):
            command = local.command[0] if local.command else ""
            self.problem([*where, '"image"'], f"module {name}: command {command!r} of image {image!r} not found")
            return None
        policy = spec.get("restartPolicy", "always")
        if policy not in RESTART_POLICIES:
            self.problem(
                [*where, '"restartPolicy"'],
                f"module {name}: restartPolicy {policy!r} is not one of {', '.join(RESTART_POLICIES)}",
            )
        status = spec.get("status", "running")
        if status not in STATUSES:
            self.problem([*where, '"status"'], f"module {name}: status {status!r} is not one of {', '.join(STATUSES)}")
        order = spec.get("startupOrder", DEFAULT_STARTUP_ORDER)
        if not isinstance(order, int) or isinstance(order, bool) or order < 0:
            self.problem([*where, '"startupOrder"'], f"module {name}: startupOrder must be a non-negative integer")
            order = DEFAULT_STARTUP_ORDER
        create = self._create_options(name, settings, where)
        env = self._env(name, spec.get("env") or {}, create, where)
        binds = self._binds(name, create, where)
        return ModuleSpec(name, image, local, env, policy, status, order, binds, create)

    def _create_options(self, name: str, settings: dict[str, Any], where: list[str]) -> dict[str, Any]:
        raw = settings.get("createOptions") or {}
        if isinstance(raw, str):  # expanded manifests carry createOptions as a JSON string (maybe split)
            extra = "".join(str(settings[k]) for k in sorted(settings) if re.fullmatch(r"createOptions\d+", k))
            try:
                raw = json.loads(raw + extra) if (raw + extra).strip() else {}
            except ValueError as exc:
                self.problem([*where, '"createOptions"'], f"module {name}: createOptions is not JSON: {exc}")
                return {}
        if not isinstance(raw, dict):
            self.problem([*where, '"createOptions"'], f"module {name}: createOptions must be an object")
            return {}
        return raw

    def _env(self, name: str, raw: Any, create: dict[str, Any], where: list[str]) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in create.get("Env") or []:  # Docker's own form, overridden by the manifest's env
            key, _, value = str(item).partition("=")
            env[key] = value
        if not isinstance(raw, dict):
            self.problem([*where, '"env"'], f'module {name}: env must be an object of {{"VAR": {{"value": ...}}}}')
            return env
        for var, entry in raw.items():
            value = entry.get("value") if isinstance(entry, dict) else None
            if value is None:
                self.problem(
                    [*where, '"env"', var], f'module {name}: env {var} has no value (expected {{"value": ...}})'
                )
                continue
            env[var] = value if isinstance(value, str) else json.dumps(value)
        return env

    def _binds(self, name: str, create: dict[str, Any], where: list[str]) -> list[tuple[str, str]]:
        binds = []
        for bind in (create.get("HostConfig") or {}).get("Binds") or []:
            parts = str(bind).split(":")
            if len(parts) < 2 or not parts[0] or not parts[1].startswith("/"):
                self.problem([*where, '"Binds"'], f"module {name}: bind {bind!r} is not SOURCE:/CONTAINER_PATH[:ro]")
                continue
            binds.append((parts[0], parts[1]))
        return binds

    def _routes(self, raw: Any, modules: dict[str, ModuleSpec]) -> list[Route]:
        routes: list[Route] = []
        if not isinstance(raw, dict):
            self.problem(["$edgeHub", '"routes"'], "$edgeHub routes must be an object")
            return routes
        for name, value in raw.items():
            where = ["$edgeHub", '"routes"', name]
            spec = value if isinstance(value, dict) else {"route": value}
            text = spec.get("route")
            if not isinstance(text, str):
                self.problem(where, f'route {name}: expected a string or {{"route": ...}}')
                continue
            priority, time_to_live = spec.get("priority", 0), spec.get("timeToLiveSecs")
            if not _is_int(priority) or not 0 <= priority <= 9:
                self.problem([*where, '"priority"'], f"route {name}: priority must be an integer 0-9, not {priority!r}")
                continue
            if time_to_live is not None and (not _is_int(time_to_live) or time_to_live < 0):
                self.problem([*where, '"timeToLiveSecs"'], f"route {name}: timeToLiveSecs must be a whole number >= 0")
                continue
            try:
                route = parse_route(name, text, priority=priority, time_to_live=time_to_live)
            except RouteError as exc:
                self.problem([*where, text], f"route {name}: {exc}", len(json.dumps(text[: exc.position - 1])) - 2)
                continue
            for module in sorted(route.modules() - self.declared):
                self.problem(
                    where,
                    f"route {name}: unknown module {module!r} (modules: {', '.join(sorted(self.declared)) or 'none'})",
                )
            routes.append(route)
        return routes

    def _twins(self, modules_content: dict[str, Any], modules: dict[str, ModuleSpec]) -> dict[str, dict[str, Any]]:
        desired: dict[str, dict[str, Any]] = {name: {} for name in modules}
        for key, entry in modules_content.items():
            if key in ("$edgeAgent", "$edgeHub"):
                continue
            name = key[1:] if key.startswith("$") and key[1:] in self.declared else key
            if name not in self.declared:
                self.problem([key], f"twin {key!r} is for a module that is not in $edgeAgent's modules")
                continue
            properties = entry.get("properties.desired") if isinstance(entry, dict) else None
            if not isinstance(properties, dict):
                self.problem([key], f'twin {key!r}: expected {{"properties.desired": {{...}}}}')
                continue
            desired[name] = properties
        return desired


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _locate(
    text: str, keys: Sequence[str], column_offset: int | None = None, raw_needle: str | None = None
) -> tuple[int, int]:
    """Line (and column) of the last of `keys` found one after the other as JSON strings in `text` (then of
    `raw_needle`, searched as it is, when given)."""
    index = 0
    for key in keys:
        needle = key if key.startswith('"') else json.dumps(key)[1:-1]
        found = text.find(f'"{needle}"' if not key.startswith('"') else needle, index)
        if found < 0:
            break
        index = found
    if raw_needle is not None and (found := text.find(raw_needle, index)) >= 0:
        index = found
    if column_offset is not None:
        index += 1 + column_offset  # inside the string literal: skip its opening quote
    return _position(text, index)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON `true` is no priority
