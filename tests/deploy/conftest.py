"""What the deployment checks share: the templates, a sample .env, manifests expanded by the real iotedgedev,
and what the module code itself says (its Settings classes, the outputs it sends on, the inputs it reads)."""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

TEMPLATES = ("deployment.template.json", "deployment.debug.template.json")
PLATFORMS = ("amd64", "arm32v7", "arm64v8")
MODULE_FOLDERS = ("ImageClassifierService", "CameraCapture", "SenseHatDisplay", "CustomVisionPortal")
IOTEDGEDEV_TIMEOUT = 60


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


def parse_dotenv(path: Path) -> dict[str, str]:
    """KEY=value lines as iotedgedev's python-dotenv reads them (the template has no quotes or exports)."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=value: {line!r}"
            values[key.strip()] = value.strip()
    return values


# Azure Blob Storage on IoT Edge: Microsoft's image, not one of ours (the local runtime runs Azurite for it).
BLOB_MODULE = "azureblobstorageoniotedge"
BLOB_IMAGE = "mcr.microsoft.com/azure-blob-storage"


def agent_modules(manifest: dict) -> dict[str, dict]:
    return manifest["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"]


def custom_modules(manifest: dict) -> dict[str, dict]:
    """The modules built from this repository (not the blob module, which is Microsoft's image)."""
    return {name: m for name, m in agent_modules(manifest).items() if not m["settings"]["image"].startswith(BLOB_IMAGE)}


def routes(manifest: dict) -> dict[str, str]:
    raw = manifest["modulesContent"]["$edgeHub"]["properties.desired"]["routes"]
    return {name: value["route"] if isinstance(value, dict) else value for name, value in raw.items()}


def desired(manifest: dict, module: str) -> dict[str, Any]:
    return manifest["modulesContent"].get(module, {}).get("properties.desired", {})


# -- the module code ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModuleCode:
    """One module folder and what its Python package does, found from its main.py and the CLI."""

    folder: str
    command: str  # edgevision <command>
    package: str  # e.g. edgevision.capture
    settings: type  # its edgevision.config.Settings subclass

    @property
    def path(self) -> Path:
        return ROOT / "modules" / self.folder

    def module_json(self) -> dict:
        return load_json(self.path / "module.json")


def main_command(folder: str) -> str:
    """The subcommand main.py runs: `main(["serve"])`."""
    tree = ast.parse((ROOT / "modules" / folder / "main.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "main" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.List) and arg.elts and isinstance(arg.elts[0], ast.Constant):
                return arg.elts[0].value
    raise AssertionError(f"modules/{folder}/main.py does not call edgevision.cli.main([COMMAND])")


def command_package(command: str) -> str:
    """The package whose cli.py registered `command`, from the real argument parser."""
    from edgevision.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert command in subparsers.choices, f"`edgevision {command}` is not a registered subcommand"
    func = subparsers.choices[command].get_default("func")
    return func.__module__.rsplit(".", 1)[0]


def package_files(package: str) -> list[Path]:
    folder = ROOT.joinpath(*package.split("."))
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def settings_class(package: str) -> type:
    """The package's one Settings subclass, found by scanning its sources (no agreed name needed)."""
    from edgevision.config import Settings

    found = []
    for path in package_files(package):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(_base_name(b).endswith("Settings") for b in node.bases):
                module_name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
                cls = getattr(importlib.import_module(module_name), node.name)
                if isinstance(cls, type) and issubclass(cls, Settings) and cls is not Settings:
                    found.append(cls)
    leaves = [c for c in found if not any(o is not c and issubclass(o, c) for o in found)]
    if len(leaves) > 1:  # several: the one the command's handler builds
        cli = ROOT.joinpath(*package.split("."), "cli.py")
        text = cli.read_text() if cli.exists() else ""
        leaves = [c for c in leaves if re.search(rf"\b{c.__name__}\b", text)]
    assert len(leaves) == 1, f"{package}: expected one edgevision.config.Settings subclass, found {leaves}"
    return leaves[0]


def _base_name(node: ast.expr) -> str:
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


@cache
def module_code(folder: str) -> ModuleCode:
    command = main_command(folder)
    package = command_package(command)
    return ModuleCode(folder, command, package, settings_class(package))


def string_constants(package: str) -> dict[str, str]:
    """Module-level NAME = "text" assignments across a package and the contracts it imports them from."""
    names = {}
    for path in [ROOT / "edgevision" / "contracts.py", *package_files(package)]:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and isinstance(getattr(node.value, "value", None), str):
                names.update({t.id: node.value.value for t in node.targets if isinstance(t, ast.Name)})
    return names


def _resolve(node: ast.expr, constants: dict[str, str]) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name) and node.id in constants:
        return [constants[node.id]]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [v for elt in node.elts for v in _resolve(elt, constants)]
    return []


def sent_outputs(package: str) -> set[str]:
    """Output names the package passes to `hub.send(OUTPUT, ...)`."""
    constants = string_constants(package)
    outputs: set[str] = set()
    for path in package_files(package):
        for node in ast.walk(ast.parse(path.read_text())):
            is_send = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "send"
            if is_send and node.args:
                outputs.update(_resolve(node.args[0], constants))
    return outputs


def read_inputs(package: str) -> set[str]:
    """Input names the package compares `message.input_name` with."""
    constants = string_constants(package)
    inputs: set[str] = set()
    for path in package_files(package):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                if any(isinstance(s, ast.Attribute) and s.attr == "input_name" for s in sides):
                    for side in sides:
                        inputs.update(_resolve(side, constants))
    return inputs


def environ_reads(paths: list[Path]) -> set[str]:
    """Names read with os.environ.get("X"), os.environ["X"] or os.getenv("X")."""
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
                target = node.func
                is_get = target.attr == "get" and _dotted(target.value) == "os.environ"
                if (is_get or _dotted(target) == "os.getenv") and isinstance(node.args[0], ast.Constant):
                    names.add(node.args[0].value)
            is_item = isinstance(node, ast.Subscript) and _dotted(node.value) == "os.environ"
            if is_item and isinstance(node.slice, ast.Constant):
                names.add(node.slice.value)
    return names


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return getattr(node, "id", "")


# -- iotedgedev --------------------------------------------------------------------------------------------------


def iotedgedev_binary() -> Path:
    """iotedgedev from .venv-tools (scripts/setup.sh test installs it there), else from PATH."""
    local = ROOT / ".venv-tools" / "bin" / "iotedgedev"
    if local.exists():
        return local
    found = shutil.which("iotedgedev")
    if found:
        return Path(found)
    pytest.fail("iotedgedev is not installed: run scripts/setup.sh test (it creates .venv-tools)")


def solution_copy(dest: Path, dotenv: Path | None = None) -> Path:
    """What genconfig reads, copied: the templates, the module.json files and a .env (default: the template)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in TEMPLATES:
        shutil.copy(ROOT / name, dest / name)
    for folder in MODULE_FOLDERS:
        (dest / "modules" / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "modules" / folder / "module.json", dest / "modules" / folder / "module.json")
    shutil.copy(dotenv or ROOT / ".env.template", dest / ".env")
    return dest


def run_genconfig(solution: Path, template: str, platform: str) -> subprocess.CompletedProcess:
    """`iotedgedev genconfig -P <platform> --fail-on-validation-error`, offline and with a clean environment:
    the proxy points at a closed local port, so its schema download fails at once (as with no network)."""
    closed = "http://127.0.0.1:9"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(solution / ".home"),  # its telemetry settings file lands here, not in the user's home
        "http_proxy": closed,
        "https_proxy": closed,
        "HTTP_PROXY": closed,
        "HTTPS_PROXY": closed,
        "no_proxy": "",
        "LANG": "C.UTF-8",
    }
    command = [str(iotedgedev_binary()), "genconfig", "-f", template, "-P", platform, "--fail-on-validation-error"]
    return subprocess.run(
        command, cwd=solution, env=env, capture_output=True, text=True, timeout=IOTEDGEDEV_TIMEOUT, check=False
    )


def expanded_name(template: str, platform: str) -> str:
    stem = template.removesuffix(".template.json")  # deployment / deployment.debug
    return f"{stem}.{platform}.json"


@pytest.fixture(scope="session")
def expanded(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict]:
    """(template, platform) -> the manifest iotedgedev wrote to config/, for every template and platform."""
    solution = solution_copy(tmp_path_factory.mktemp("solution"))
    manifests = {}
    for template in TEMPLATES:
        for platform in PLATFORMS:
            result = run_genconfig(solution, template, platform)
            output = result.stdout + result.stderr
            assert result.returncode == 0, f"genconfig {template} -P {platform} failed:\n{output}"
            assert "Validation for all createOptions passed" in output, output
            manifests[(template, platform)] = load_json(solution / "config" / expanded_name(template, platform))
    return manifests


# -- schemas -----------------------------------------------------------------------------------------------------


def schema_validator(name: str):
    """A validator for ../shared/schemas/<name> whose $refs resolve offline among the sibling schemas."""
    from jsonschema.validators import validator_for
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    from tests.conftest import shared_path

    folder = shared_path("schemas")
    resources = []
    for path in sorted(folder.glob("*.json")):
        contents = load_json(path)
        resource = Resource.from_contents(contents, default_specification=DRAFT4)
        uri = contents.get("$id") or contents.get("id") or path.name
        resources.append((uri, resource))
    registry = Registry().with_resources(resources)
    schema = load_json(folder / name)
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, registry=registry)


def schema_errors(validator, instance: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


PLACEHOLDER = re.compile(r"\$(?:\{([^}]*)\}|([A-Za-z_]\w*))")
# `$name`s that belong to IoT Edge (and the `$schema-template` key), not to .env
EDGE_TOKENS = {"edgeAgent", "edgeHub", "upstream", "body", "schema"}


def placeholders(text: str) -> set[str]:
    """`$NAME` and `${NAME}` left in a text, less IoT Edge's own `$upstream`, `$body`, ..."""
    return {braced or plain for braced, plain in PLACEHOLDER.findall(text)} - EDGE_TOKENS
