"""Training data in: one folder per tag (multi-class), or a CSV of `path,tags` (multi-label, tags separated
by `;`, an empty cell or the negative tag marks an image that has none of the tags).

Counting is checked twice: on the listing, before any file is read, and again after unreadable files are
skipped, before any feature is computed. Nothing is ever deleted or moved; skipped files and duplicates are
listed for the report.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgevision.models import decode_image
from edgevision.models.images import ImageDecodeError
from edgevision.train.errors import DatasetError
from edgevision.train.features import ImageRef

MIN_IMAGES_PER_TAG = 5
TAG_SEPARATOR = ";"


@dataclass(frozen=True)
class Sample:
    """One distinct image (by content) and its tags; `tags == ()` is a negative (multi-label only)."""

    path: Path
    sha256: str
    tags: tuple[str, ...]

    @property
    def ref(self) -> ImageRef:
        return ImageRef(self.path, self.sha256)


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass(frozen=True)
class Duplicate:
    """The same image content found at several paths; `conflict` when they carry different tags."""

    sha256: str
    paths: tuple[str, ...]
    tags: tuple[tuple[str, ...], ...]

    @property
    def conflict(self) -> bool:
        return len(set(self.tags)) > 1


@dataclass(frozen=True)
class ImageList:
    """Training data given as a list instead of a folder or a CSV (the portal's tagged images): `root` stands
    for the source in reports. Multi-label rows with no tag are negatives, as in a CSV."""

    root: Path
    entries: tuple[tuple[Path, tuple[str, ...]], ...]
    multilabel: bool


@dataclass
class Dataset:
    source: Path
    multilabel: bool
    tags: list[str]  # the model's outputs, in label order
    samples: list[Sample]
    skipped: list[Skipped] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    negative_tag: str = "Negative"

    def targets(self) -> np.ndarray:
        """[N, tags] 0/1 rows (one-hot for multi-class; all zero for a negative)."""
        index = {tag: i for i, tag in enumerate(self.tags)}
        out = np.zeros((len(self.samples), len(self.tags)), np.float32)
        for row, sample in enumerate(self.samples):
            for tag in sample.tags:
                out[row, index[tag]] = 1.0
        return out

    def counts(self) -> dict[str, int]:
        counts = Counter(tag for sample in self.samples for tag in sample.tags)
        result = {tag: counts.get(tag, 0) for tag in self.tags}
        if self.multilabel:
            result[self.negative_tag] = sum(1 for s in self.samples if not s.tags)
        return result

    def fingerprint(self) -> str:
        """Changes when any image's content or tags change; independent of paths and order."""
        lines = sorted(f"{s.sha256}\t{TAG_SEPARATOR.join(sorted(s.tags))}" for s in self.samples)
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def load_dataset(
    source: str | Path | ImageList,
    *,
    negative_tag: str = "Negative",
    min_images: int = MIN_IMAGES_PER_TAG,
    progress: Callable[[int], None] | None = None,
    known: Callable[[str], bool] | None = None,
) -> Dataset:
    """List, check, read and de-duplicate a training set. Raises DatasetError when it cannot be trained on.
    `known(sha256)` says an image content was decoded before (its features are cached): no need to again."""
    if isinstance(source, ImageList):
        entries, skipped, multilabel = list(source.entries), [], source.multilabel
        source = source.root
    elif (source := Path(source)).is_dir():
        entries, skipped = _list_folders(source)
        multilabel = False
    elif source.is_file():
        entries, skipped = _read_csv(source, negative_tag)
        multilabel = True
    else:
        raise DatasetError(f"{source}: no such folder or CSV file")
    tags = _check_counts(entries, multilabel, min_images, source, when="")
    samples, unreadable, duplicates = _read_images(entries, progress, known)
    skipped += unreadable
    after = [(s.path, s.tags) for s in samples]
    note = f" after skipping {len(skipped)} unreadable file(s)" if skipped else ""
    if duplicates:
        note += f" and {sum(d.conflict for d in duplicates)} image(s) tagged inconsistently"
    _check_counts(after, multilabel, min_images, source, when=note)
    return Dataset(source, multilabel, tags, samples, skipped, duplicates, negative_tag)


def _list_folders(root: Path) -> tuple[list[tuple[Path, tuple[str, ...]]], list[Skipped]]:
    # Files beside the tag folders (a README, a licence) are not training data and are not listed.
    entries: list[tuple[Path, tuple[str, ...]]] = []
    skipped: list[Skipped] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(folder.rglob("*")):
            if path.name.startswith(".") or not path.is_file():
                continue  # .DS_Store and friends are not training data
            entries.append((path, (folder.name,)))
    return entries, skipped


def _read_csv(path: Path, negative_tag: str) -> tuple[list[tuple[Path, tuple[str, ...]]], list[Skipped]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the CSV: {exc}") from None
    entries: list[tuple[Path, tuple[str, ...]]] = []
    skipped: list[Skipped] = []
    for line_no, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if line_no == 1 and [c.strip().lower() for c in row[:2]] == ["path", "tags"]:
            continue  # header
        if len(row) != 2:
            skipped.append(Skipped(f"{path.name}:{line_no}", f"expected 2 columns (path,tags), got {len(row)}"))
            continue
        file = (path.parent / row[0].strip()).resolve()
        tags = tuple(sorted({t.strip() for t in row[1].split(TAG_SEPARATOR) if t.strip()}))
        if negative_tag in tags:
            if len(tags) > 1:
                skipped.append(Skipped(str(file), f"{negative_tag!r} cannot be combined with other tags"))
                continue
            tags = ()
        if not file.is_file():
            skipped.append(Skipped(str(file), f"file not found ({path.name} line {line_no})"))
            continue
        entries.append((file, tags))
    return entries, skipped


def _check_counts(
    entries: list[tuple[Path, tuple[str, ...]]], multilabel: bool, min_images: int, source: Path, when: str
) -> list[str]:
    counts = Counter(tag for _, tags in entries for tag in tags)
    tags = sorted(counts)
    if len(tags) < 2:
        found = f"only {tags[0]!r}" if tags else "none"
        layout = "a CSV of path,tags" if multilabel else "one sub-folder of images per tag"
        raise DatasetError(f"{source}: at least 2 tags are needed{when}, found {found} (expected {layout})")
    unit = " readable" if when else " files"  # the first check counts files, before any is read
    few = [f"{tag!r} ({counts[tag]}{unit})" for tag in tags if counts[tag] < min_images]
    if few:
        raise DatasetError(f"{source}: every tag needs at least {min_images} images{when}; too few: {', '.join(few)}")
    return tags


def _read_images(
    entries: list[tuple[Path, tuple[str, ...]]],
    progress: Callable[[int], None] | None,
    known: Callable[[str], bool] | None,
) -> tuple[list[Sample], list[Skipped], list[Duplicate]]:
    skipped: list[Skipped] = []
    by_hash: dict[str, list[tuple[Path, tuple[str, ...]]]] = defaultdict(list)
    for path, tags in entries:
        sha256, reason = _read_image(path, known)
        if reason:
            skipped.append(Skipped(str(path), reason))
        else:
            by_hash[sha256].append((path, tags))
        if progress:
            progress(1)
    samples: list[Sample] = []
    duplicates: list[Duplicate] = []
    for sha256, found in by_hash.items():
        if len(found) > 1:
            duplicates.append(Duplicate(sha256, tuple(str(p) for p, _ in found), tuple(t for _, t in found)))
            if len({t for _, t in found}) > 1:
                continue  # contradicting labels: train on neither, report both
        samples.append(Sample(found[0][0], sha256, found[0][1]))
    return samples, skipped, duplicates


def _read_image(path: Path, known: Callable[[str], bool] | None) -> tuple[str, str]:
    """(content hash, "") when the scoring core decodes the file, else ("", why it cannot be trained on)."""
    try:
        data = path.read_bytes()
        sha256 = hashlib.sha256(data).hexdigest()
        if known is None or not known(sha256):
            decode_image(data)
    except OSError as exc:
        return "", f"cannot read the file: {exc.strerror or exc}"
    except ImageDecodeError as exc:
        return "", exc.message
    return sha256, ""
