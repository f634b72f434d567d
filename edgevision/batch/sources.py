"""What SOURCE means: a folder (scored recursively), a glob, or (Spark) any path Spark can read.

Both engines skip names starting with `.` or `_` (Hadoop's hidden-file rule, which Spark applies), so a folder
scores the same files locally and on Spark. Matches of a glob that are folders are scored recursively.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

from edgevision.errors import EdgeVisionError

GLOB_CHARS = re.compile(r"[*?\[{]")
URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # a scheme; one letter would be a Windows drive


class SourceError(EdgeVisionError):
    """SOURCE names nothing we can score."""


def is_remote(source: str) -> bool:
    return bool(URL.match(source)) and not source.startswith("file:")


def hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def glob_root(source: str) -> str:
    """The longest leading part of `source` without glob characters: the folder `folder` is relative to."""
    parts = source.split("/")
    for index, part in enumerate(parts):
        if GLOB_CHARS.search(part):
            return "/".join(parts[:index]) or ("/" if source.startswith("/") else ".")
    return source


@dataclass(frozen=True)
class LocalSource:
    root: str  # absolute folder that `folder` is relative to
    files: list[str]  # absolute paths, sorted


def local_files(source: str) -> LocalSource:
    """Every file SOURCE names on this machine, sorted; raises SourceError with the reason otherwise."""
    if is_remote(source):
        raise SourceError(f"{source}: the local engine reads local files; use --engine spark for remote storage")
    source = _strip_file(source)
    path = Path(source)
    if path.is_dir():
        root, files = os.path.abspath(source), _walk(source)
    elif path.is_file():
        root, files = os.path.abspath(path.parent), [os.path.abspath(source)]
    elif GLOB_CHARS.search(source):
        root = os.path.abspath(glob_root(source))
        files = []
        for match in glob.glob(source, recursive=True):
            if os.path.isdir(match):
                files.extend(_walk(match))
            elif os.path.isfile(match) and not _hidden_below(match, root):
                files.append(os.path.abspath(match))
    else:
        raise SourceError(f"{source}: no such file, folder or glob match")
    files = sorted(set(files))
    if not files:
        raise SourceError(f"{source}: no files to score (names starting with '.' or '_' are skipped)")
    return LocalSource(root, files)


def _walk(folder: str) -> list[str]:
    found = []
    for parent, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not hidden(d)]
        found.extend(os.path.abspath(os.path.join(parent, n)) for n in names if not hidden(n))
    return [f for f in found if os.path.isfile(f)]


def _hidden_below(path: str, root: str) -> bool:
    relative = os.path.relpath(os.path.abspath(path), root)
    return any(hidden(part) for part in Path(relative).parts if part not in (".", ".."))


@dataclass(frozen=True)
class SparkSource:
    """How to hand SOURCE to `spark.read.format("binaryFile")`."""

    load_path: str
    root: str  # what `folder` is relative to (qualified by Spark later)
    glob_filter: str | None  # `pathGlobFilter`: a pattern on file names


def spark_source(source: str) -> SparkSource:
    """`root/**/NAME-PATTERN` becomes a recursive read of root with a file-name filter (Hadoop globs have no
    `**`); other globs and plain paths go to Spark as they are, read recursively. Local paths that exist here
    are made absolute; anything else is resolved by Spark (e.g. against the cluster's default file system)."""
    glob_filter = None
    if "**" in source:
        head, _, tail = source.partition("**")
        tail = tail.lstrip("/")
        if "**" in tail or "/" in tail:
            raise SourceError(f"{source}: with the spark engine, '**' must be followed by a file-name pattern only")
        source, glob_filter = head.rstrip("/") or "/", tail or None
    root = glob_root(source)
    local = Path(_strip_file(source))
    if not GLOB_CHARS.search(source) and not is_remote(source) and local.is_file():
        root = str(local.parent)
    return SparkSource(_absolute(source), _absolute(root), glob_filter)


def _strip_file(path: str) -> str:
    for prefix in ("file://", "file:"):
        if path.startswith(prefix):
            return path[len(prefix) :]
    return path


def _absolute(path: str) -> str:
    if URL.match(path):
        return path
    return os.path.abspath(path) if Path(glob_root(path)).exists() else path
