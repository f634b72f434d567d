"""A project on disk, like a Custom Vision project: an id, tags with ids, numbered iterations, published names.

<project>/project.json                   id, name, type, tags [{id, name}], published {name: iteration}
<project>/iterations/<N>/iteration.json  id, number, created, dataset fingerprint, settings, metrics summary
<project>/iterations/<N>/metrics.json    full evaluation;  report.html  the same, readable
<project>/iterations/<N>/model/          model.onnx, labels.txt, cvexport.manifest
<project>/published/<name>/              a copy of one iteration's model files, served under <name>
<project>/cache/features/                backbone features by image content hash (safe to delete)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from edgevision.files import write_atomic
from edgevision.train.errors import ProjectError
from edgevision.train.export import MODEL_FILE, copy_model_dir

PROJECT_FILE = "project.json"
ITERATION_FILE = "iteration.json"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json(path: Path, data: dict) -> None:
    """Atomically: a crash leaves the old file or the new one, never half of one."""
    write_atomic(path, json.dumps(data, indent=2) + "\n", durable=True)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProjectError(f"{path}: not found") from None
    except (OSError, ValueError) as exc:
        raise ProjectError(f"{path}: cannot read it: {exc}") from None


@dataclass
class Iteration:
    dir: Path
    info: dict

    @property
    def number(self) -> int:
        return int(self.info["number"])

    @property
    def model_dir(self) -> Path:
        return self.dir / "model"


class Project:
    def __init__(self, root: Path, data: dict) -> None:
        self.root = root
        self.data = data

    # -- opening ---------------------------------------------------------------------------------------

    @classmethod
    def open(cls, root: str | Path) -> Project:
        root = Path(root)
        if not (root / PROJECT_FILE).is_file():
            raise ProjectError(f"{root}: not a trainer project (no {PROJECT_FILE}); `edgevision train` creates one")
        return cls(root, read_json(root / PROJECT_FILE))

    @classmethod
    def open_or_create(
        cls, root: str | Path, *, multilabel: bool, name: str | None = None, create: bool = True
    ) -> Project:
        """Open the project at `root`, or a new one (written now, or by the first `save()` if not `create`)."""
        root = Path(root)
        if (root / PROJECT_FILE).is_file():
            project = cls.open(root)
            wanted = "Multilabel" if multilabel else "Multiclass"
            if project.classification_type != wanted:
                raise ProjectError(
                    f"{root}: a {project.classification_type} project cannot train on {wanted.lower()} data"
                    " (folders = multi-class, a CSV = multi-label); use another --project"
                )
            return project
        if root.exists() and any(root.iterdir()):
            raise ProjectError(f"{root}: exists and is not empty; give a new or empty folder as --project")
        data = {
            "id": str(uuid.uuid4()),
            "name": name or root.resolve().name,
            "created": now(),
            "classificationType": "Multilabel" if multilabel else "Multiclass",
            "tags": [],
            "published": {},
        }
        project = cls(root, data)
        if create:
            project.save()
        return project

    def save(self) -> None:
        write_json(self.root / PROJECT_FILE, self.data)

    # -- properties ----------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def classification_type(self) -> str:
        return self.data["classificationType"]

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache" / "features"

    def tag_ids(self, names: list[str]) -> list[str]:
        """Ids for `names`, giving new tags a new id (a tag keeps its id across iterations)."""
        known = {tag["name"]: tag["id"] for tag in self.data["tags"]}
        for name in names:
            if name not in known:
                known[name] = str(uuid.uuid4())
                self.data["tags"].append({"id": known[name], "name": name, "created": now()})
        return [known[name] for name in names]

    # -- iterations ----------------------------------------------------------------------------------

    def iterations(self) -> list[Iteration]:
        found = []
        base = self.root / "iterations"
        for folder in base.iterdir() if base.is_dir() else []:
            if folder.name.isdigit() and (folder / ITERATION_FILE).is_file():
                found.append(Iteration(folder, read_json(folder / ITERATION_FILE)))
        return sorted(found, key=lambda it: it.number)

    def iteration(self, number: int) -> Iteration:
        folder = self.root / "iterations" / str(number)
        if not (folder / ITERATION_FILE).is_file():
            have = ", ".join(str(it.number) for it in self.iterations()) or "none yet"
            raise ProjectError(f"{self.root}: no iteration {number} (iterations: {have})")
        iteration = Iteration(folder, read_json(folder / ITERATION_FILE))
        if not (iteration.model_dir / MODEL_FILE).is_file():
            raise ProjectError(f"{iteration.dir}: the iteration has no model ({MODEL_FILE} is missing)")
        return iteration

    @contextmanager
    def new_iteration_dir(self) -> Iterator[tuple[int, Path]]:
        """The next number and a private staging folder, removed if the block fails; `commit_iteration` moves
        it into place."""
        base = self.root / "iterations"
        base.mkdir(parents=True, exist_ok=True)
        numbers = [int(p.name) for p in base.iterdir() if p.name.isdigit()]
        number = max(numbers, default=0) + 1
        staging = Path(tempfile.mkdtemp(dir=base, prefix=f".{number}-"))
        try:
            yield number, staging
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def commit_iteration(self, number: int, staging: Path) -> Iteration:
        target = self.root / "iterations" / str(number)
        try:
            os.rename(staging, target)  # fails if another run took the number meanwhile
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            raise ProjectError(f"{target}: another training run wrote this iteration; train again") from None
        self.save()
        return Iteration(target, read_json(target / ITERATION_FILE))

    # -- publishing ----------------------------------------------------------------------------------

    @property
    def published_dir(self) -> Path:
        return self.root / "published"

    def published(self) -> dict[str, dict]:
        return dict(self.data.get("published", {}))

    def publish(self, number: int, name: str, *, replace: bool = False) -> Path:
        if not NAME_PATTERN.match(name):
            raise ProjectError(
                f"publish name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        iteration = self.iteration(number)
        current = self.published().get(name)
        if current and not replace:
            raise ProjectError(
                f"{name!r} is already published (iteration {current['iteration']}); add --replace to move it"
            )
        out = self.published_dir / name
        copy_model_dir(iteration.model_dir, out)
        self.data.setdefault("published", {})[name] = {
            "iteration": number,
            "iterationId": iteration.info["id"],
            "published": now(),
        }
        self.save()
        return out

    def unpublish(self, name: str) -> None:
        if name not in self.published():
            raise ProjectError(f"{name!r} is not published in {self.root}")
        shutil.rmtree(self.published_dir / name, ignore_errors=True)
        del self.data["published"][name]
        self.save()

    def publish_names(self, number: int) -> list[str]:
        return sorted(name for name, entry in self.published().items() if entry["iteration"] == number)
