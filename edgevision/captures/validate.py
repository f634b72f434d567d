"""Validating a Camtrap DP package offline: the profile with jsonschema, the tables with frictionless.

The package names its profile and table schemas by web address (as the standard requires); nothing is fetched:

1. `datapackage.json` against the Camtrap DP profile read from the schemas folder. The profile's two external
   references resolve locally: the GeoJSON schema to the copy frictionless ships, the generic Data Package
   schema to an empty one, because step 2 checks that part (frictionless' own Data Package rules).
2. Every table against its Camtrap DP Table Schema read from the same folder (types, required fields,
   enumerations, patterns, unique and primary keys, foreign keys between the tables), by frictionless.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from edgevision.captures.errors import InvalidPackage
from edgevision.captures.records import read_json_object

TABLES = ("deployments", "media", "observations")
PROFILE = "camtrap-dp-profile.json"
DATA_PACKAGE_SCHEMA = "https://specs.frictionlessdata.io/schemas/data-package.json"
GEOJSON_SCHEMA = "http://json.schemastore.org/geojson.json"
MAX_PROBLEMS = 20


def default_schemas_dir() -> Path:
    from edgevision.captures.camtrap_dp import SCHEMAS_DIR

    return SCHEMAS_DIR


def check_package(package: str | Path, schemas: str | Path | None = None) -> list[str]:
    """What is wrong with the package at `package` (a folder or its datapackage.json); empty when valid."""
    folder = Path(package).parent if Path(package).name == "datapackage.json" else Path(package)
    schemas_dir = Path(schemas) if schemas else default_schemas_dir()
    descriptor = read_json_object(folder / "datapackage.json", "the package descriptor")
    problems = [f"datapackage.json: {p}" for p in _profile_problems(descriptor, schemas_dir)]
    problems += _table_problems(descriptor, folder, schemas_dir)
    return problems[:MAX_PROBLEMS]


def validate_package(package: str | Path, schemas: str | Path | None = None) -> None:
    """Raise InvalidPackage (one line: the first problems) unless the package is valid."""
    problems = check_package(package, schemas)
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise InvalidPackage(f"{package} is not a valid Camtrap DP 1.0.2 package: {'; '.join(problems[:3])}{more}")


def _profile_problems(descriptor: dict[str, Any], schemas_dir: Path) -> list[str]:
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    profile = read_json_object(schemas_dir / PROFILE, "the Camtrap DP profile")
    geojson = _geojson_schema()
    registry = Registry().with_resources(
        [
            (DATA_PACKAGE_SCHEMA, Resource.from_contents({}, default_specification=DRAFT4)),
            (GEOJSON_SCHEMA, Resource.from_contents(geojson, default_specification=DRAFT4)),
            # The GeoJSON schema's own references are relative to the id it declares.
            (str(geojson.get("id", "")).rstrip("#"), Resource.from_contents(geojson, default_specification=DRAFT4)),
        ]
    )
    validator = jsonschema.Draft4Validator(profile, registry=registry, format_checker=jsonschema.FormatChecker())
    problems = []
    for error in sorted(validator.iter_errors(descriptor), key=lambda e: list(map(str, e.path))):
        where = "/".join(map(str, error.absolute_path)) or "(top)"
        problems.append(f"{where}: {_short(error.message)}")
    return problems


def _geojson_schema() -> dict[str, Any]:
    import frictionless

    return json.loads((Path(frictionless.__file__).parent / "assets" / "profiles" / "geojson.json").read_text())


def _table_problems(descriptor: dict[str, Any], folder: Path, schemas_dir: Path) -> list[str]:
    from frictionless import FrictionlessException, Package

    local = copy.deepcopy(descriptor)
    local.pop("profile", None)  # checked above, against the local copy
    for resource in local.get("resources", []):
        if isinstance(resource, dict) and resource.get("name") in TABLES:
            resource["schema"] = read_json_object(
                schemas_dir / f"{resource['name']}-table-schema.json", "a table schema"
            )
    try:
        report = Package(local, basepath=str(folder)).validate()
    except FrictionlessException as exc:
        return [f"frictionless: {_short(str(exc))}"]
    problems = [f"datapackage.json: {_short(error.message)}" for error in report.errors]
    for task in report.tasks:
        problems += [f"{task.name}: {_short(error.message)}" for error in task.errors[:MAX_PROBLEMS]]
    return problems


def _short(message: str, limit: int = 200) -> str:
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 3] + "..."
