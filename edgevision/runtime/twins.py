"""Module twins as edgeHub keeps them: desired properties from the manifest, reported properties from the
module, each with a `$version` that grows with every change."""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgevision.files import write_atomic


@dataclass
class Twin:
    desired: dict[str, Any] = field(default_factory=dict)
    reported: dict[str, Any] = field(default_factory=dict)
    desired_version: int = 1
    reported_version: int = 1

    def document(self) -> dict[str, Any]:
        """The body of a twin GET response."""
        return {
            "desired": {**copy.deepcopy(self.desired), "$version": self.desired_version},
            "reported": {**copy.deepcopy(self.reported), "$version": self.reported_version},
        }


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """JSON merge patch as twins apply it: objects merge, null deletes."""
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The merge patch turning `old` into `new` (removed keys become null)."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(old[key], dict):
            inner = diff(old[key], value)
            if inner:
                patch[key] = inner
        elif old[key] != value:
            patch[key] = copy.deepcopy(value)
    return patch


class TwinStore:
    """Every module's twin; thread-safe, saved to `<folder>/<module>.json` after each change."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self._twins: dict[str, Twin] = {}
        self._lock = threading.Lock()

    def add(self, module: str, desired: dict[str, Any]) -> None:
        with self._lock:
            self._twins[module] = Twin(desired=copy.deepcopy(desired))
            self._save(module)

    def document(self, module: str) -> dict[str, Any]:
        with self._lock:
            return self._twins.setdefault(module, Twin()).document()

    def report(self, module: str, patch: dict[str, Any]) -> int:
        """Apply a reported-properties patch; returns the new reported `$version`."""
        with self._lock:
            twin = self._twins.setdefault(module, Twin())
            merge_patch(twin.reported, patch)
            twin.reported_version += 1
            self._save(module)
            return twin.reported_version

    def set_desired(self, module: str, desired: dict[str, Any]) -> dict[str, Any] | None:
        """Replace the desired properties; returns the patch to push (with `$version`), or None if unchanged."""
        with self._lock:
            twin = self._twins.setdefault(module, Twin())
            patch = diff(twin.desired, desired)
            if not patch:
                return None
            twin.desired = copy.deepcopy(desired)
            twin.desired_version += 1
            self._save(module)
            return {**patch, "$version": twin.desired_version}

    def reported(self, module: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._twins.get(module, Twin()).reported)

    def _save(self, module: str) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{module}.json"
        write_atomic(path, json.dumps(self._twins[module].document(), indent=2, default=str))
