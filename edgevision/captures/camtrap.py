"""Kept frames as a Camera Trap Data Package (Camtrap DP 1.0.2): datapackage.json, deployments.csv, media.csv,
observations.csv.

- a deployment per device folder (its place and camera from the mapping file; its span: first to last frame);
- a media row per kept JPEG, copied under `media/` (or referenced by URL with `media_base_url`, e.g. the blob
  container the device uploads to);
- a media-level observation per tag the frame carries (the matched tag, plus predictions at or above the
  threshold for multi-label models): `classificationMethod` is `machine` (the standard allows only `human` or
  `machine`), the model id goes to `classifiedBy`, its probability to `classificationProbability`, the tag
  itself to `observationTags` (`tag:deer`). A tag the mapping does not know is `unclassified`.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from edgevision import __version__
from edgevision.captures.errors import CapturesError
from edgevision.captures.mapping import Deployment, Mapping
from edgevision.captures.records import DEFAULT_THRESHOLD, Frame, Skipped, read_captures
from edgevision.captures.validate import TABLES, default_schemas_dir
from edgevision.contracts import iso_time

VERSION = "1.0.2"
SPEC = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}"
PROFILE_URL = f"{SPEC}/camtrap-dp-profile.json"
FIXED_KEYS = {"resources", "profile"}  # what the mapping file's `package` section cannot replace


@dataclass
class ExportResult:
    out: Path
    deployments: int
    media: int
    observations: int
    skipped: list[Skipped]


@dataclass
class Site:
    """A device and what the package says about it."""

    device: str
    deployment_id: str
    place: Deployment
    frames: list[Frame]


def camtrap_time(when: datetime) -> str:
    """The tables' datetime format (`%Y-%m-%dT%H:%M:%S%z`): UTC, whole seconds."""
    return iso_time(when.astimezone(timezone.utc).replace(microsecond=0), "seconds")


def export_camtrap_dp(
    capture_dir: str | Path,
    out: str | Path,
    *,
    mapping: Mapping,
    deployments: Iterable[str] = (),
    media_base_url: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    overwrite: bool = False,
) -> ExportResult:
    """Write the package to `out`; returns what it holds. CapturesError for anything the user must fix."""
    capture_dir, out = Path(capture_dir), Path(out)
    source = read_captures(capture_dir, threshold)
    if not source.frames:
        raise CapturesError(f"no usable captures under {capture_dir} ({len(source.skipped)} files skipped)")
    sites = _select(_sites(source.frames, mapping), list(deployments))
    _prepare(out, overwrite)
    media, observations = [], []
    for site in sites:
        for frame in site.frames:
            media_id = f"{site.deployment_id}_{Path(frame.media).stem}"
            path = _media_path(capture_dir, out, frame.media, media_base_url)
            media.append(_media_row(frame, media_id, site.deployment_id, path, public=False))
            observations += _observation_rows(frame, media_id, site.deployment_id, mapping)
    _write_table(out, "deployments", [_deployment_row(site) for site in sites])
    _write_table(out, "media", media)
    _write_table(out, "observations", observations)
    descriptor = _descriptor(sites, observations, mapping)
    (out / "datapackage.json").write_text(json.dumps(descriptor, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return ExportResult(out, len(sites), len(media), len(observations), source.skipped)


def _sites(frames: list[Frame], mapping: Mapping) -> list[Site]:
    by_device: dict[str, list[Frame]] = {}
    for frame in frames:
        by_device.setdefault(frame.device, []).append(frame)
    sites = []
    for device, kept in sorted(by_device.items()):
        place = mapping.deployment(device)
        if place is None:
            raise CapturesError(
                f"device {device!r} has no place: add deployments.{device} with its latitude and longitude"
                " to the --mapping file (Camtrap DP requires them)"
            )
        sites.append(Site(device, place.deploymentID or _slug(device), place, kept))
    ids = [site.deployment_id for site in sites]
    if len(set(ids)) != len(ids):
        raise CapturesError(f"two devices map to the same deploymentID: {sorted(ids)}")
    return sites


def _select(sites: list[Site], wanted: list[str]) -> list[Site]:
    if not wanted:
        return sites
    known = {name for site in sites for name in (site.device, site.deployment_id)}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise CapturesError(f"unknown deployment {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return [site for site in sites if site.device in wanted or site.deployment_id in wanted]


def _prepare(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise CapturesError(f"--out {out} is a file")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise CapturesError(f"--out {out} is not empty (use --overwrite to replace its package)")
        for name in (*(f"{table}.csv" for table in TABLES), "datapackage.json"):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "media", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def _media_path(capture_dir: Path, out: Path, relative: str, base_url: str | None) -> str:
    if base_url:
        return f"{base_url.rstrip('/')}/{quote(relative)}"
    target = out / "media" / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(capture_dir / relative, target)  # same disk: no copy of the bytes
    except OSError:
        shutil.copy2(capture_dir / relative, target)
    return f"media/{relative}"


def _media_row(frame: Frame, media_id: str, deployment_id: str, path: str, public: bool) -> dict[str, Any]:
    sidecar = frame.sidecar
    comment = f"source {sidecar.source}, frame {sidecar.frame}, video time {sidecar.videoTime:.3f} s" if sidecar else ""
    return {
        "mediaID": media_id,
        "deploymentID": deployment_id,
        # The camera keeps a frame because a model detected something in it: activity detection, not time lapse.
        "captureMethod": "activityDetection",
        "timestamp": camtrap_time(frame.when),
        "filePath": path,
        "filePublic": public,
        "fileName": Path(frame.media).name,
        "fileMediatype": "image/jpeg",
        "mediaComments": comment,
    }


def _observation_rows(frame: Frame, media_id: str, deployment_id: str, mapping: Mapping) -> list[dict[str, Any]]:
    rows = []
    when = camtrap_time(frame.when)
    ranked = sorted(frame.tags.items(), key=lambda item: (-item[1], item[0]))
    for number, (tag, probability) in enumerate(ranked, start=1):
        taxon = mapping.taxon(tag)
        kind = taxon.observationType if taxon else "unclassified"
        rows.append(
            {
                "observationID": f"{media_id}_{number}",
                "deploymentID": deployment_id,
                "mediaID": media_id,
                "eventStart": when,
                "eventEnd": when,
                "observationLevel": "media",
                "observationType": kind,
                "scientificName": taxon.scientificName if taxon and kind in {"animal", "human"} else None,
                "classificationMethod": "machine",
                "classifiedBy": frame.model or None,
                "classificationTimestamp": when,
                "classificationProbability": round(probability, 6),
                "observationTags": f"tag:{tag}",
            }
        )
    return rows


def _deployment_row(site: Site) -> dict[str, Any]:
    place = site.place
    start, end = _span(site)
    row = place.model_dump(exclude={"deploymentID", "deploymentStart", "deploymentEnd"}, exclude_none=True)
    row.update(
        deploymentID=site.deployment_id,
        deploymentStart=camtrap_time(start),
        deploymentEnd=camtrap_time(end),
        cameraID=site.device,
    )
    row.setdefault("cameraModel", "edgevision CameraCapture")
    return row


def _span(site: Site) -> tuple[datetime, datetime]:
    """The deployment's start and end: the mapping's, else the first frame (down) and last (up, whole seconds)."""
    first, last = site.frames[0].when, site.frames[-1].when
    start = _aware(site.place.deploymentStart) or first.replace(microsecond=0)
    end = _aware(site.place.deploymentEnd) or (last + timedelta(microseconds=-last.microsecond % 1_000_000))
    return start, end


def _aware(when: datetime | None) -> datetime | None:
    return None if when is None else when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _write_table(out: Path, name: str, rows: list[dict[str, Any]]) -> None:
    """`rows` as `<name>.csv`, columns in the order of the Camtrap DP table schema (absent = empty)."""
    schema = json.loads((default_schemas_dir() / f"{name}-table-schema.json").read_text(encoding="utf-8"))
    columns = [field["name"] for field in schema["fields"]]
    with open(out / f"{name}.csv", "w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({column: _cell(row.get(column)) for column in columns})


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _descriptor(sites: list[Site], observations: list[dict[str, Any]], mapping: Mapping) -> dict[str, Any]:
    spans = [_span(site) for site in sites]
    descriptor: dict[str, Any] = {
        "resources": [_resource(name) for name in TABLES],
        "profile": PROFILE_URL,
        "name": "edgevision-captures",
        "id": str(uuid.uuid4()),
        "created": camtrap_time(datetime.now(timezone.utc)),
        "title": f"Kept frames of {', '.join(site.deployment_id for site in sites)}",
        "contributors": [{"title": "edgevision captures export", "role": "contributor"}],
        "sources": [{"title": "edgevision", "version": __version__}],
        "project": {
            "title": "edgevision camera captures",
            "samplingDesign": "opportunistic",
            "captureMethod": ["activityDetection"],
            "individualAnimals": False,
            "observationLevel": ["media"],
        },
        "spatial": _spatial(sites),
        "temporal": {
            "start": min(start for start, _ in spans).astimezone(timezone.utc).date().isoformat(),
            "end": max(end for _, end in spans).astimezone(timezone.utc).date().isoformat(),
        },
        "taxonomic": _taxonomic(observations, mapping),
    }
    return _merge(descriptor, mapping.package)


def _resource(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "path": f"{name}.csv",
        "profile": "tabular-data-resource",
        "format": "csv",
        "mediatype": "text/csv",
        "encoding": "utf-8",
        "schema": f"{SPEC}/{name}-table-schema.json",
    }


def _spatial(sites: list[Site]) -> dict[str, Any]:
    points = sorted({(site.place.longitude, site.place.latitude) for site in sites})
    if len(points) == 1:
        return {"type": "Point", "coordinates": list(points[0])}
    return {"type": "MultiPoint", "coordinates": [list(point) for point in points]}


def _taxonomic(observations: list[dict[str, Any]], mapping: Mapping) -> list[dict[str, Any]]:
    taxa: dict[str, dict[str, Any]] = {}
    for row in observations:
        name = row["scientificName"]
        if not name or name in taxa:
            continue
        entry: dict[str, Any] = {"scientificName": name}
        taxon = mapping.taxon(row["observationTags"].removeprefix("tag:"))
        if taxon and taxon.taxonRank:
            entry["taxonRank"] = taxon.taxonRank
        if taxon and taxon.vernacularName:
            entry["vernacularNames"] = {"eng": taxon.vernacularName}
        taxa[name] = entry
    return [taxa[name] for name in sorted(taxa)]


def _merge(descriptor: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """The mapping file's `package` section over the defaults (`project` key by key)."""
    fixed = FIXED_KEYS & set(extra)
    if fixed:
        raise CapturesError(f"the mapping file's package section cannot set {', '.join(sorted(fixed))}")
    merged = {**descriptor, **{k: v for k, v in extra.items() if k != "project"}}
    if isinstance(extra.get("project"), dict):
        merged["project"] = {**descriptor["project"], **extra["project"]}
    return merged


def _slug(device: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", device).strip("-") or "camera"
