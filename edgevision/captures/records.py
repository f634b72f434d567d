"""Reading kept frames: a capture folder (JPEGs + `CaptureSidecar` JSON) or a Camtrap DP package, as `Frame`s.

A capture folder is what CameraCapture writes (`CAPTURE_DIR/YYYY-MM-DD/<name>.jpg` + `<name>.json`), or several
of them side by side, one per device (`DIR/<device>/YYYY-MM-DD/...`, the blob naming of store and forward): the
device is the path between the folder and the date folder, else the folder's own name. A capture is a JPEG; one
whose sidecar is missing, truncated or of another shape is skipped and listed, never fatal.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from edgevision.captures.errors import CapturesError
from edgevision.captures.mapping import Mapping
from edgevision.contracts import CaptureSidecar, ContractError, parse

DATE_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")
JPEG_SUFFIXES = {".jpg", ".jpeg"}
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class Frame:
    """One kept frame: when, on which device, and the tags it carries (tag -> probability)."""

    device: str
    when: datetime  # timezone-aware
    tags: dict[str, float]
    media: str  # the JPEG relative to the folder read, or a package's filePath
    model: str = ""
    sidecar: CaptureSidecar | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Skipped:
    """A file that is not a usable capture, and why."""

    path: str
    reason: str


@dataclass
class Frames:
    """What a source holds: its frames (oldest first) and what was skipped."""

    frames: list[Frame]
    skipped: list[Skipped]
    kind: str  # "captures" or "camtrap-dp"

    @property
    def devices(self) -> list[str]:
        return sorted({frame.device for frame in self.frames})


def frame_tags(sidecar: CaptureSidecar, threshold: float = DEFAULT_THRESHOLD) -> dict[str, float]:
    """The tags a kept frame carries: the one that made it kept, plus every prediction at or above `threshold`
    (more than one for a multi-label model, e.g. a deer and a person in the same frame)."""
    tags = {sidecar.matchedTag: sidecar.matchedProbability}
    for prediction in sidecar.predictions:
        if prediction.probability >= threshold and prediction.tagName:
            tags[prediction.tagName] = max(prediction.probability, tags.get(prediction.tagName, 0.0))
    return tags


def device_of(root: Path, jpeg: Path) -> str:
    """The device a capture belongs to: its folders below `root` except the date folder (else root's name)."""
    parts = list(jpeg.relative_to(root).parent.parts)
    if parts and DATE_FOLDER.match(parts[-1]):
        parts.pop()
    return "/".join(parts) or root.resolve().name


def read_captures(root: str | Path, threshold: float = DEFAULT_THRESHOLD) -> Frames:
    """Every capture under `root`, oldest first; bad or missing sidecars are skipped and listed."""
    root = Path(root)
    if not root.is_dir():
        raise CapturesError(f"{root} is not a folder")
    frames: list[Frame] = []
    skipped: list[Skipped] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue  # hidden: a write the camera had not finished (or a dot file)
        relative = path.relative_to(root).as_posix()
        if path.suffix.lower() in JPEG_SUFFIXES:
            sidecar = _read_sidecar(path.with_suffix(".json"))
            if isinstance(sidecar, str):
                skipped.append(Skipped(relative, sidecar))
                continue
            when = sidecar.capturedAt if sidecar.capturedAt.tzinfo else sidecar.capturedAt.replace(tzinfo=timezone.utc)
            tags = frame_tags(sidecar, threshold)
            frames.append(Frame(device_of(root, path), when, tags, relative, sidecar.modelId, sidecar))
        elif path.suffix == ".json" and not _has_jpeg(path):
            skipped.append(Skipped(relative, "sidecar without its JPEG"))
    frames.sort(key=lambda frame: (frame.when, frame.device, frame.media))
    return Frames(frames, skipped, "captures")


def _has_jpeg(sidecar: Path) -> bool:
    return any(sidecar.with_suffix(suffix).exists() for suffix in (".jpg", ".jpeg", ".JPG", ".JPEG"))


def _read_sidecar(path: Path) -> CaptureSidecar | str:
    """The sidecar, or why it cannot be used."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return "no sidecar JSON"
    except OSError as exc:
        return f"sidecar unreadable: {exc.strerror or exc}"
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return f"sidecar is not JSON (truncated?): {exc}"
    try:
        return parse(CaptureSidecar, data)
    except ContractError as exc:
        return f"sidecar of another version or shape: {exc}"


# -- Camtrap DP packages --------------------------------------------------------------------------------


def is_package(source: str | Path) -> bool:
    source = Path(source)
    return source.name == "datapackage.json" or (source / "datapackage.json").is_file()


def read_package(source: str | Path, mapping: Mapping) -> Frames:
    """The media of a Camtrap DP package as frames, tagged by their observations (media-level ones; a media
    without any takes the event-level observations of its deployment whose time span holds it). An
    observation's tag is the `tag:` of its observationTags (what this tool exports), else its mapped tag."""
    folder = Path(source).parent if Path(source).name == "datapackage.json" else Path(source)
    descriptor = read_json_object(folder / "datapackage.json")
    paths = {r.get("name"): r.get("path") for r in descriptor.get("resources", []) if isinstance(r, dict)}
    skipped: list[Skipped] = []
    media = _read_table(folder, paths.get("media"), "media")
    observations = _read_table(folder, paths.get("observations"), "observations")
    by_media: dict[str, dict[str, float]] = {}
    events: list[tuple[str, datetime, datetime, str, float]] = []
    for number, row in enumerate(observations, start=2):
        try:
            label = _tag_of(row) or mapping.label(row.get("observationType", ""), row.get("scientificName", ""))
            probability = float(row["classificationProbability"]) if row.get("classificationProbability") else 1.0
            if row.get("mediaID"):
                tags = by_media.setdefault(row["mediaID"], {})
                tags[label] = max(probability, tags.get(label, 0.0))
            else:
                start, end = _timestamp(row["eventStart"]), _timestamp(row["eventEnd"])
                events.append((row["deploymentID"], start, end, label, probability))
        except (KeyError, ValueError) as exc:
            skipped.append(Skipped(f"observations.csv line {number}", f"bad row: {exc}"))
    frames = []
    for number, row in enumerate(media, start=2):
        try:
            when, deployment = _timestamp(row["timestamp"]), row["deploymentID"]
        except (KeyError, ValueError) as exc:
            skipped.append(Skipped(f"media.csv line {number}", f"bad row: {exc}"))
            continue
        tags = by_media.get(row.get("mediaID", "")) or _event_tags(events, deployment, when)
        frames.append(Frame(deployment, when, tags, row.get("filePath", "")))
    frames.sort(key=lambda frame: (frame.when, frame.device, frame.media))
    return Frames(frames, skipped, "camtrap-dp")


def _tag_of(row: dict[str, str]) -> str:
    """The edgevision tag an exported observation keeps in `observationTags` (`tag:deer | ...`), if any."""
    for item in (row.get("observationTags") or "").split("|"):
        key, _, value = item.strip().partition(":")
        if key == "tag" and value.strip():
            return value.strip()
    return ""


def _event_tags(events: Iterable[tuple[str, datetime, datetime, str, float]], deployment: str, when: datetime):
    tags: dict[str, float] = {}
    for event_deployment, start, end, label, probability in events:
        if event_deployment == deployment and start <= when <= end:
            tags[label] = max(probability, tags.get(label, 0.0))
    return tags


def _timestamp(text: str) -> datetime:
    when = datetime.fromisoformat(text.strip())
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def read_json_object(path: Path, what: str = "") -> dict:
    """A JSON object from `path`, or a one-line CapturesError naming `what` (e.g. "the package descriptor")."""
    name = f"{what} {path}" if what else str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CapturesError(f"{name} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CapturesError(f"cannot read {name}: {exc}") from None
    if not isinstance(data, dict):
        raise CapturesError(f"{name} is not a JSON object")
    return data


def _read_table(folder: Path, path: object, name: str) -> list[dict[str, str]]:
    if not isinstance(path, str) or not path:
        raise CapturesError(f"{folder / 'datapackage.json'} has no {name} resource with a path")
    try:
        with open(folder / path, encoding="utf-8", newline="") as file:
            return list(csv.DictReader(file))
    except OSError as exc:
        raise CapturesError(f"cannot read the {name} table {folder / path}: {exc.strerror or exc}") from None
