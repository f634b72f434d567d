"""Projects, tags and images: the Training API's data, on the database and the image store. Every method
checks ids against the project it is given, so an id from another project is "not found", never a leak."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from edgevision.portal import shapes
from edgevision.portal.db import open_database
from edgevision.portal.errors import ApiError, bad_request, not_found
from edgevision.portal.settings import PortalSettings
from edgevision.portal.store import ImageRejected, ImageStore, StoredImage

log = logging.getLogger(__name__)

MAX_BATCH = 64
MAX_TAKE = 256
MAX_TAGS_PER_IMAGE = 20
CLASSIFICATION_TYPES = {"multiclass": "Multiclass", "multilabel": "Multilabel"}
TAG_TYPES = {"regular": "Regular", "negative": "Negative"}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class NewImage:
    """One image of a create batch: bytes (or why there are none), where it came from, its own tag ids."""

    data: bytes | None
    source: str = ""
    tag_ids: tuple[str, ...] = ()
    error: tuple[str, str] | None = None  # (status, message) found before the bytes were read


class Portal:
    def __init__(self, settings: PortalSettings) -> None:
        self.settings = settings
        self.root = settings.data_dir
        self.root.mkdir(parents=True, exist_ok=True)
        url = settings.database_url.get_secret_value() if settings.database_url else None
        self.db = open_database(url, self.root)
        self.store = ImageStore(self.root / "images", settings.max_image_bytes)
        self._request = threading.local()

    def project_dir(self, project_id: str) -> Path:
        return self.root / "projects" / project_id

    # -- domains -------------------------------------------------------------------------------------------

    def domains(self) -> list[dict]:
        return [shapes.domain(*entry) for entry in shapes.DOMAINS]

    def domain(self, domain_id: str) -> dict:
        for entry in shapes.DOMAINS:
            if entry[0] == domain_id.lower():
                return shapes.domain(*entry)
        raise not_found("NotFoundDomain", f"no classification domain {domain_id!r} (see GET /domains)")

    def _known_domain(self, domain_id: str) -> str:
        known = {entry[0] for entry in shapes.DOMAINS}
        if str(domain_id).lower() not in known:
            raise bad_request("BadRequestProjectUnknownDomain", f"no classification domain {domain_id} (GET /domains)")
        return str(domain_id).lower()

    # -- projects ------------------------------------------------------------------------------------------

    def project_row(self, project_id: str):
        row = self.db.one("SELECT * FROM projects WHERE id = ?", (_uuid(project_id, "NotFoundProject"),))
        if row is None:
            raise not_found("NotFoundProject", f"project {project_id} not found")
        return row

    def projects(self) -> list[dict]:
        return [shapes.project(r) for r in self.db.query("SELECT * FROM projects ORDER BY created, id")]

    def create_project(
        self,
        name: str | None,
        description: str | None = None,
        domain_id: str | None = None,
        classification_type: str | None = None,
        export_platforms: list[str] | None = None,
    ) -> dict:
        name = _project_name(name)
        domain_id = self._known_domain(domain_id) if domain_id else shapes.DEFAULT_DOMAIN
        kind = _classification_type(classification_type or "Multiclass")
        platforms = _export_platforms(export_platforms)
        project_id, stamp = str(uuid.uuid4()), now()
        with self.db.transaction() as cur:
            if cur.execute("SELECT 1 FROM projects WHERE name = ?", (name,)).fetchone():
                raise bad_request("BadRequestProjectNameNotUnique", f"a project named {name!r} exists already")
            cur.execute(
                "INSERT INTO projects (id, name, description, domain_id, classification_type,"
                " target_export_platforms, created, last_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (project_id, name, description or "", domain_id, kind, json.dumps(platforms), stamp, stamp),
            )
        log.info("project %s (%s, %s) created", project_id, name, kind)
        return self.project(project_id)

    def project(self, project_id: str) -> dict:
        return shapes.project(self.project_row(project_id))

    def update_project(self, project_id: str, body: dict) -> dict:
        row = self.project_row(project_id)
        settings = body.get("settings") or {}
        name = _project_name(body["name"]) if body.get("name") is not None else row["name"]
        description = body.get("description", row["description"])
        domain_id = self._known_domain(settings["domainId"]) if settings.get("domainId") else row["domain_id"]
        kind = row["classification_type"]
        if settings.get("classificationType"):
            kind = _classification_type(settings["classificationType"])
        platforms = settings.get("targetExportPlatforms")
        platforms = (
            _export_platforms(platforms) if platforms is not None else json.loads(row["target_export_platforms"])
        )
        with self.db.transaction() as cur:
            if (
                kind != row["classification_type"]
                and cur.execute("SELECT 1 FROM iterations WHERE project_id = ?", (row["id"],)).fetchone()
            ):
                raise bad_request(
                    "BadRequestProjectUnsupportedDomainTypeChange",
                    "the classification type cannot change once the project has iterations; create a new project",
                )
            clash = cur.execute("SELECT 1 FROM projects WHERE name = ? AND id <> ?", (name, row["id"])).fetchone()
            if clash:
                raise bad_request("BadRequestProjectNameNotUnique", f"a project named {name!r} exists already")
            cur.execute(
                "UPDATE projects SET name = ?, description = ?, domain_id = ?, classification_type = ?,"
                " target_export_platforms = ?, last_modified = ? WHERE id = ?",
                (name, description or "", domain_id, kind, json.dumps(platforms), now(), row["id"]),
            )
        return self.project(row["id"])

    def delete_project(self, project_id: str, on_deleted: Callable[[str], None] | None = None) -> None:
        row = self.project_row(project_id)
        with self.db.transaction() as cur:
            published = cur.execute(
                "SELECT name FROM iterations WHERE project_id = ? AND publish_name IS NOT NULL", (row["id"],)
            ).fetchall()
            if cur.execute(
                "SELECT 1 FROM iterations WHERE project_id = ? AND status = 'Training'", (row["id"],)
            ).fetchone():
                raise bad_request("BadRequestTrainingAlreadyInProgress", "the project is training; delete it after")
            if published:
                names = ", ".join(r["name"] for r in published)
                raise bad_request(
                    "BadRequestIterationIsPublished", f"unpublish the published iterations first ({names})"
                )
            cur.execute("DELETE FROM projects WHERE id = ?", (row["id"],))
        shutil.rmtree(self.project_dir(row["id"]), ignore_errors=True)
        self.collect_garbage()
        log.info("project %s (%s) deleted", row["id"], row["name"])

    # -- tags ----------------------------------------------------------------------------------------------

    def tag_row(self, project_id: str, tag_id: str):
        row = self.db.one(
            "SELECT * FROM tags WHERE id = ? AND project_id = ?", (_uuid(tag_id, "NotFoundTag"), project_id)
        )
        if row is None:
            raise not_found("NotFoundTag", f"tag {tag_id} not found in project {project_id}")
        return row

    def tags(self, project_id: str, iteration_id: str | None = None) -> list[dict]:
        project = self.project_row(project_id)
        counts = self._tag_counts(project["id"], iteration_id)
        if iteration_id:
            labels = self.iteration_labels(project["id"], iteration_id)
            rows = self.db.query("SELECT * FROM tags WHERE project_id = ? ORDER BY created, id", (project["id"],))
            known = {r["id"]: r for r in rows}
            return [
                shapes.tag(known[t["id"]], counts.get(t["id"], 0))
                if t["id"] in known
                else {
                    "id": t["id"],
                    "name": t["name"],
                    "description": "",
                    "type": t.get("type", "Regular"),
                    "imageCount": counts.get(t["id"], 0),
                }
                for t in labels
            ]
        rows = self.db.query("SELECT * FROM tags WHERE project_id = ? ORDER BY created, id", (project["id"],))
        return [shapes.tag(r, counts.get(r["id"], 0)) for r in rows]

    def tag(self, project_id: str, tag_id: str, iteration_id: str | None = None) -> dict:
        for entry in self.tags(project_id, iteration_id):
            if entry["id"] == tag_id.lower():
                return entry
        self.tag_row(project_id, tag_id)
        raise not_found("NotFoundTag", f"tag {tag_id} is not in iteration {iteration_id}")

    def create_tag(self, project_id: str, name: str | None, description: str | None, kind: str | None) -> dict:
        project = self.project_row(project_id)
        name = _tag_name(name)
        kind = _tag_type(kind or "Regular")
        tag_id = str(uuid.uuid4())
        with self.db.transaction() as cur:
            if cur.execute("SELECT 1 FROM tags WHERE project_id = ? AND name = ?", (project["id"], name)).fetchone():
                raise bad_request("BadRequestTagNameNotUnique", f"the project already has a tag named {name!r}")
            if (
                kind == "Negative"
                and cur.execute(
                    "SELECT 1 FROM tags WHERE project_id = ? AND type = 'Negative'", (project["id"],)
                ).fetchone()
            ):
                raise bad_request("BadRequestMultipleNegativeTag", "a project has at most one Negative tag")
            cur.execute(
                "INSERT INTO tags (id, project_id, name, description, type, created) VALUES (?, ?, ?, ?, ?, ?)",
                (tag_id, project["id"], name, description or "", kind, now()),
            )
        return self.tag(project["id"], tag_id)

    def update_tag(self, project_id: str, tag_id: str, body: dict) -> dict:
        row = self.tag_row(project_id, tag_id)
        name = _tag_name(body["name"]) if body.get("name") is not None else row["name"]
        kind = _tag_type(body["type"]) if body.get("type") else row["type"]
        with self.db.transaction() as cur:
            if cur.execute(
                "SELECT 1 FROM tags WHERE project_id = ? AND name = ? AND id <> ?", (project_id, name, row["id"])
            ).fetchone():
                raise bad_request("BadRequestTagNameNotUnique", f"the project already has a tag named {name!r}")
            if (
                kind == "Negative"
                and row["type"] != "Negative"
                and cur.execute(
                    "SELECT 1 FROM tags WHERE project_id = ? AND type = 'Negative'", (project_id,)
                ).fetchone()
            ):
                raise bad_request("BadRequestMultipleNegativeTag", "a project has at most one Negative tag")
            cur.execute(
                "UPDATE tags SET name = ?, description = ?, type = ? WHERE id = ?",
                (name, body.get("description", row["description"]) or "", kind, row["id"]),
            )
        return self.tag(project_id, row["id"])

    def delete_tag(self, project_id: str, tag_id: str) -> None:
        row = self.tag_row(project_id, tag_id)
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM tags WHERE id = ?", (row["id"],))

    def _tag_counts(self, project_id: str, iteration_id: str | None) -> dict[str, int]:
        if iteration_id:
            counts: dict[str, int] = {}
            for r in self.db.query(
                "SELECT tag_ids FROM iteration_images WHERE iteration_id = ?",
                (self.iteration_row(project_id, iteration_id)["id"],),
            ):
                for tag_id in json.loads(r["tag_ids"]):
                    counts[tag_id] = counts.get(tag_id, 0) + 1
            return counts
        rows = self.db.query(
            "SELECT it.tag_id, COUNT(*) AS n FROM image_tags it JOIN tags t ON t.id = it.tag_id"
            " WHERE t.project_id = ? GROUP BY it.tag_id",
            (project_id,),
        )
        return {r["tag_id"]: int(r["n"]) for r in rows}

    def _checked_tag_ids(self, project_id: str, tag_ids: list[str]) -> tuple[list[str], str]:
        """(the tag ids, "") when they all belong to the project, else ([], why not)."""
        wanted = [t.lower() for t in tag_ids if t]
        if not wanted:
            return [], ""
        marks = ",".join("?" * len(wanted))
        rows = self.db.query(
            f"SELECT id, type FROM tags WHERE project_id = ? AND id IN ({marks})", [project_id, *wanted]
        )
        found = {r["id"]: r["type"] for r in rows}
        unknown = [t for t in wanted if t not in found]
        if unknown:
            return [], f"tag {unknown[0]} is not a tag of project {project_id}"
        if len(set(wanted)) > MAX_TAGS_PER_IMAGE:
            return [], f"at most {MAX_TAGS_PER_IMAGE} tags per image"
        if "Negative" in found.values() and len(set(wanted)) > 1:
            return [], "the Negative tag cannot be on an image with other tags"
        return sorted(set(wanted)), ""

    # -- images: create ------------------------------------------------------------------------------------

    def create_images(
        self, project_id: str, batch: list[NewImage], tag_ids: list[str], metadata: dict
    ) -> tuple[int, dict]:
        """Store a batch; each image gets its own status. (200 when all went in, else 207, summary)."""
        project = self.project_row(project_id)
        if len(batch) > MAX_BATCH:
            raise bad_request("BadRequestExceededBatchSize", f"{len(batch)} images in one batch; at most {MAX_BATCH}")
        if not batch:
            raise bad_request("BadRequestImageBatch", "the batch has no images")
        metadata = _metadata(metadata)
        results = [self._create_one(project["id"], item, tag_ids, metadata) for item in batch]
        ok = all(r["status"] in {"OK", "OKDuplicate"} for r in results)
        return (200 if ok else 207), {"isBatchSuccessful": ok, "images": results}

    def _create_one(self, project_id: str, item: NewImage, batch_tags: list[str], metadata: dict) -> dict:
        result = {"sourceUrl": item.source, "status": "OK", "image": None}
        if item.error:
            result["status"] = item.error[0]
            return result
        tag_ids, problem = self._checked_tag_ids(project_id, [*batch_tags, *item.tag_ids])
        if problem:
            status = "ErrorNegativeAndRegularTagOnSameImage" if "Negative" in problem else "ErrorTagLimitExceed"
            result["status"] = "ErrorInvalidTag" if "not a tag" in problem else status
            return result
        try:
            stored = self.store.put(item.data or b"")
        except ImageRejected as exc:
            log.info("image %s refused: %s", item.source or "(bytes)", exc.message)
            result["status"] = exc.status
            return result
        image_id, duplicate = self._insert_image(project_id, stored, tag_ids, metadata)
        result["status"] = "OKDuplicate" if duplicate else "OK"
        result["image"] = self.images_by_ids(project_id, [image_id])[0]
        return result

    def _insert_image(
        self, project_id: str, stored: StoredImage, tag_ids: list[str], metadata: dict
    ) -> tuple[str, bool]:
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO blobs (sha256, width, height, size_bytes, format) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (sha256) DO NOTHING",
                (stored.sha256, stored.width, stored.height, stored.size_bytes, stored.format),
            )
            row = cur.execute(
                "SELECT id FROM images WHERE project_id = ? AND sha256 = ?", (project_id, stored.sha256)
            ).fetchone()
            if row is not None:
                return row["id"], True
            image_id, stamp = str(uuid.uuid4()), now()
            cur.execute(
                "INSERT INTO images (id, project_id, sha256, created, metadata) VALUES (?, ?, ?, ?, ?)",
                (image_id, project_id, stored.sha256, stamp, json.dumps(metadata)),
            )
            for tag_id in tag_ids:
                cur.execute(
                    "INSERT INTO image_tags (image_id, tag_id, created) VALUES (?, ?, ?)", (image_id, tag_id, stamp)
                )
            return image_id, False

    # -- images: read --------------------------------------------------------------------------------------

    @property
    def links(self) -> shapes.Links:
        """How image URLs are written for the current request (its base URL); set by the API per request."""
        return getattr(self._request, "links", shapes.Links("", None))

    def use_links(self, links: shapes.Links) -> None:
        self._request.links = links

    def list_images(
        self,
        project_id: str,
        *,
        status: str = "All",
        tag_ids: list[str] | None = None,
        iteration_id: str | None = None,
        order: str | None = None,
        take: int = 50,
        skip: int = 0,
        count: bool = False,
    ):
        project = self.project_row(project_id)
        if not 0 <= take <= MAX_TAKE or skip < 0:
            raise bad_request("BadRequestInvalid", f"take must be 0-{MAX_TAKE} and skip >= 0")
        direction = _order(order)
        where, params = ["i.project_id = ?"], [project["id"]]
        if iteration_id:
            where.append("i.id IN (SELECT image_id FROM iteration_images WHERE iteration_id = ?)")
            params.append(self.iteration_row(project["id"], iteration_id)["id"])
        tagged = "EXISTS (SELECT 1 FROM image_tags x WHERE x.image_id = i.id)"
        if status.lower() == "tagged":
            where.append(tagged)
        elif status.lower() == "untagged":
            where.append(f"NOT {tagged}")
        if tag_ids:
            wanted = [t.lower() for t in tag_ids]
            marks = ",".join("?" * len(wanted))
            where.append(f"EXISTS (SELECT 1 FROM image_tags x WHERE x.image_id = i.id AND x.tag_id IN ({marks}))")
            params += wanted
        clause = " AND ".join(where)
        if count:
            return int(self.db.one(f"SELECT COUNT(*) AS n FROM images i WHERE {clause}", params)["n"])
        rows = self.db.query(
            f"SELECT i.*, b.width, b.height FROM images i JOIN blobs b ON b.sha256 = i.sha256 WHERE {clause}"
            f" ORDER BY i.created {direction}, i.id {direction} LIMIT ? OFFSET ?",
            [*params, take, skip],
        )
        return self._shaped_images(rows)

    def images_by_ids(self, project_id: str, image_ids: list[str]) -> list[dict]:
        wanted = [i.lower() for i in image_ids if i][:MAX_TAKE]
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        rows = self.db.query(
            f"SELECT i.*, b.width, b.height FROM images i JOIN blobs b ON b.sha256 = i.sha256"
            f" WHERE i.project_id = ? AND i.id IN ({marks})",
            [project_id, *wanted],
        )
        by_id = {r["id"]: r for r in rows}
        return self._shaped_images([by_id[i] for i in wanted if i in by_id])

    def _shaped_images(self, rows) -> list[dict]:
        if not rows:
            return []
        marks = ",".join("?" * len(rows))
        tag_rows = self.db.query(
            "SELECT x.image_id, x.tag_id, x.created, t.name AS tag_name FROM image_tags x"
            f" JOIN tags t ON t.id = x.tag_id WHERE x.image_id IN ({marks})",
            [r["id"] for r in rows],
        )
        by_image: dict[str, list] = {}
        for t in sorted(tag_rows, key=lambda t: t["tag_name"]):  # code point order whatever the database's collation
            by_image.setdefault(t["image_id"], []).append(t)
        return [shapes.image(r, by_image.get(r["id"], []), self.links) for r in rows]

    # -- images: tag, untag, delete --------------------------------------------------------------------------

    def add_image_tags(self, project_id: str, pairs: list[tuple[str, str]]) -> dict:
        project = self.project_row(project_id)
        summary: dict[str, list] = {"created": [], "duplicated": [], "exceeded": []}
        if len(pairs) > MAX_BATCH * 4:
            raise bad_request("BadRequestExceededBatchSize", f"{len(pairs)} image tags in one request; at most 256")
        with self.db.transaction() as cur:
            for image_id, tag_id in pairs:
                image_id, tag_id = image_id.lower(), tag_id.lower()
                image = cur.execute(
                    "SELECT 1 FROM images WHERE id = ? AND project_id = ?", (image_id, project["id"])
                ).fetchone()
                tag = cur.execute(
                    "SELECT type FROM tags WHERE id = ? AND project_id = ?", (tag_id, project["id"])
                ).fetchone()
                if image is None or tag is None:
                    raise bad_request("BadRequestInvalidIds", f"image {image_id} or tag {tag_id} is not in the project")
                entry = {"imageId": image_id, "tagId": tag_id}
                current = cur.execute(
                    "SELECT x.tag_id, t.type FROM image_tags x JOIN tags t ON t.id = x.tag_id WHERE x.image_id = ?",
                    (image_id,),
                ).fetchall()
                if any(r["tag_id"] == tag_id for r in current):
                    summary["duplicated"].append(entry)
                    continue
                negative = tag["type"] == "Negative" or any(r["type"] == "Negative" for r in current)
                if negative and current:
                    raise bad_request(
                        "BadRequestNegativeAndRegularTagOnSameImage",
                        f"image {image_id}: the Negative tag cannot be combined with other tags",
                    )
                if len(current) >= MAX_TAGS_PER_IMAGE:
                    summary["exceeded"].append(entry)
                    continue
                cur.execute(
                    "INSERT INTO image_tags (image_id, tag_id, created) VALUES (?, ?, ?)", (image_id, tag_id, now())
                )
                summary["created"].append(entry)
        return summary

    def remove_image_tags(self, project_id: str, image_ids: list[str], tag_ids: list[str]) -> None:
        project = self.project_row(project_id)
        images, tags = [i.lower() for i in image_ids if i], [t.lower() for t in tag_ids if t]
        if not images or not tags:
            raise bad_request("BadRequestRequiredParamIsNull", "imageIds and tagIds are both required")
        with self.db.transaction() as cur:
            for image_id in images:
                for tag_id in tags:
                    cur.execute(
                        "DELETE FROM image_tags WHERE image_id = ? AND tag_id = ? AND image_id IN"
                        " (SELECT id FROM images WHERE project_id = ?)",
                        (image_id, tag_id, project["id"]),
                    )

    def delete_images(self, project_id: str, image_ids: list[str], all_images: bool, all_iterations: bool) -> None:
        project = self.project_row(project_id)
        with self.db.transaction() as cur:
            if all_images:
                cur.execute("DELETE FROM images WHERE project_id = ?", (project["id"],))
            else:
                wanted = [i.lower() for i in image_ids if i]
                if not wanted:
                    raise bad_request("BadRequestRequiredParamIsNull", "give imageIds, or allImages=true")
                if len(wanted) > MAX_TAKE:
                    raise bad_request("BadRequestExceededBatchSize", f"at most {MAX_TAKE} image ids per request")
                marks = ",".join("?" * len(wanted))
                cur.execute(f"DELETE FROM images WHERE project_id = ? AND id IN ({marks})", [project["id"], *wanted])
            if all_iterations:
                # Also out of every iteration's training set (its figures stay as trained).
                cur.execute(
                    "DELETE FROM iteration_images WHERE image_id NOT IN (SELECT id FROM images)"
                    " AND iteration_id IN (SELECT id FROM iterations WHERE project_id = ?)",
                    (project["id"],),
                )
        self.collect_garbage()

    def collect_garbage(self) -> None:
        """Remove image files no image, iteration or stored prediction refers to any more."""
        rows = self.db.query(
            "SELECT sha256, format FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM images i WHERE i.sha256 = b.sha256)"
            " AND NOT EXISTS (SELECT 1 FROM iteration_images x WHERE x.sha256 = b.sha256)"
            " AND NOT EXISTS (SELECT 1 FROM predictions p WHERE p.sha256 = b.sha256)"
        )
        for row in rows:
            with self.db.transaction() as cur:
                cur.execute("DELETE FROM blobs WHERE sha256 = ?", (row["sha256"],))
            self.store.remove(row["sha256"], row["format"])

    def blob(self, sha256: str):
        return self.db.one("SELECT * FROM blobs WHERE sha256 = ?", (sha256,))

    # -- iterations (rows; the work is in iterations.py) ----------------------------------------------------

    def iteration_row(self, project_id: str, iteration_id: str):
        row = self.db.one(
            "SELECT * FROM iterations WHERE id = ? AND project_id = ?",
            (_uuid(iteration_id, "NotFoundIteration"), project_id),
        )
        if row is None:
            raise not_found("NotFoundIteration", f"iteration {iteration_id} not found in project {project_id}")
        return row

    def iteration_labels(self, project_id: str, iteration_id: str) -> list[dict]:
        row = self.iteration_row(project_id, iteration_id)
        return json.loads(row["labels"]) if row["labels"] else []


def _uuid(value: str, code: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise not_found(code, f"{value!r} is not an id (a UUID)") from None


def _project_name(name: str | None) -> str:
    name = (name or "").strip()
    if not name or len(name) > 256:
        raise bad_request("BadRequestProjectName", "a project needs a name of 1-256 characters")
    return name


def _tag_name(name: str | None) -> str:
    name = (name or "").strip()
    if not name or len(name) > 256:
        raise bad_request("BadRequestTagName", "a tag needs a name of 1-256 characters")
    return name


def _classification_type(value: str) -> str:
    kind = CLASSIFICATION_TYPES.get(str(value).lower())
    if kind is None:
        raise bad_request(
            "BadRequestProjectUnknownClassification", f"classificationType {value!r}: Multiclass or Multilabel"
        )
    return kind


def _tag_type(value: str) -> str:
    kind = TAG_TYPES.get(str(value).lower())
    if kind is None:
        raise bad_request("BadRequestTagType", f"tag type {value!r}: Regular or Negative (this service classifies)")
    return kind


def _export_platforms(values: list[str] | None) -> list[str]:
    platforms = [str(v) for v in values or []]
    unknown = [p for p in platforms if p.upper() != "ONNX"]
    if unknown:
        raise bad_request("BadRequestProjectUnsupportedExportPlatform", f"export platform {unknown[0]!r}: only ONNX")
    return ["ONNX"] if platforms else []


def _order(order: str | None) -> str:
    value = (order or "Newest").lower()
    if value not in {"newest", "oldest"}:
        raise bad_request("BadRequestInvalid", f"orderBy {order!r}: Newest or Oldest")
    return "DESC" if value == "newest" else "ASC"


def _metadata(metadata: dict | None) -> dict[str, str]:
    metadata = metadata or {}
    if not isinstance(metadata, dict) or len(metadata) > 10:
        raise bad_request("BadRequestImageMetadataKey", "metadata is at most 10 string key/value pairs")
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or len(key) > 128:
            raise bad_request("BadRequestImageMetadataKey", f"metadata key {key!r}: 1-128 characters")
        if not isinstance(value, str) or len(value) > 256:
            raise bad_request(
                "BadRequestImageMetadataValue", f"metadata value of {key!r}: a string of <= 256 characters"
            )
    return metadata


__all__ = ["ApiError", "NewImage", "Portal"]
