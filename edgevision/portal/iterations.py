"""Iterations: queueing a training run (the worker process trains), their figures at any threshold, publishing
into the scoring service's folders, exports, quick tests and stored predictions."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import logging
import math
import shutil
import threading
import uuid
import zipfile
from pathlib import Path

import numpy as np

from edgevision.classifier.response import PredictionWriter
from edgevision.files import write_atomic
from edgevision.models import ImageDecodeError, ImageModel, decode_image, load_model
from edgevision.portal import shapes
from edgevision.portal.errors import bad_request, not_found
from edgevision.portal.service import MAX_TAKE, NewImage, Portal, now
from edgevision.portal.store import ImageRejected
from edgevision.train.export import MODEL_FILES, copy_model_dir
from edgevision.train.metrics import evaluate, predicted_tags
from edgevision.train.project import NAME_PATTERN, Project

log = logging.getLogger(__name__)

MIN_IMAGES_PER_TAG = 5
TRAINING_TYPES = {"regular": "Regular", "advanced": "Advanced"}
EXPORT_FLAVORS = {"": "", "onnx10": "ONNX10", "onnx12": "ONNX12", "int8": "Int8"}
QUEUED_FLAVORS = {"Int8"}  # built by the worker (quantization calibrates and evaluates: seconds to minutes)


class Iterations:
    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.db = portal.db
        self.writer = PredictionWriter()
        self._models: dict[str, ImageModel] = {}
        self._models_lock = threading.Lock()

    # -- training ------------------------------------------------------------------------------------------

    def train(
        self, project_id: str, training_type: str | None, budget_hours: int, force: bool, selected: list[str]
    ) -> dict:
        project = self.portal.project_row(project_id)
        kind = TRAINING_TYPES.get((training_type or "Regular").lower())
        if kind is None:
            raise bad_request("BadRequestInvalid", f"trainingType {training_type!r}: Regular or Advanced")
        if kind == "Advanced":
            if importlib.util.find_spec("torch") is None:
                raise bad_request(
                    "BadRequestNotSupported",
                    "advanced training needs PyTorch on this device: pip install 'edgevision[finetune]'",
                )
            if budget_hours < 1:
                raise bad_request(
                    "BadRequestReservedBudgetInHoursNotEnoughForAdvancedTraining",
                    "advanced training needs reservedBudgetInHours >= 1",
                )
        iteration_id, stamp = str(uuid.uuid4()), now()
        with self.db.transaction() as cur:
            if cur.execute(
                "SELECT 1 FROM iterations WHERE project_id = ? AND status = 'Training'", (project["id"],)
            ).fetchone():
                raise bad_request("BadRequestTrainingAlreadyInProgress", "this project is training already")
            labels, snapshot = self._training_set(cur, project, selected)
            fingerprint = _fingerprint(snapshot, kind)
            last = cur.execute(
                "SELECT fingerprint FROM iterations WHERE project_id = ? AND status = 'Completed'"
                " ORDER BY created DESC LIMIT 1",
                (project["id"],),
            ).fetchone()
            if last is not None and last["fingerprint"] == fingerprint and not force:
                raise bad_request(
                    "BadRequestTrainingNotNeeded",
                    "nothing changed since the last iteration (images, tags and training type); forceTrain=true"
                    " trains anyway",
                )
            number = cur.execute(
                "SELECT COUNT(*) AS n FROM iterations WHERE project_id = ?", (project["id"],)
            ).fetchone()["n"]
            name = _free_name(cur, project["id"], number + 1)
            cur.execute(
                "INSERT INTO iterations (id, project_id, name, status, created, last_modified, domain_id,"
                " classification_type, training_type, reserved_budget_in_hours, fingerprint, labels)"
                " VALUES (?, ?, ?, 'Training', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    iteration_id,
                    project["id"],
                    name,
                    stamp,
                    stamp,
                    project["domain_id"],
                    project["classification_type"],
                    kind,
                    budget_hours,
                    fingerprint,
                    json.dumps(labels),
                ),
            )
            for image_id, sha256, created, tag_ids in snapshot:
                cur.execute(
                    "INSERT INTO iteration_images (iteration_id, image_id, sha256, created, tag_ids)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (iteration_id, image_id, sha256, created, json.dumps(tag_ids)),
                )
        log.info("%s of project %s queued (%s, %d images)", name, project["id"], kind, len(snapshot))
        return self.iteration(project["id"], iteration_id)

    def _training_set(self, cur, project, selected: list[str]) -> tuple[list[dict], list[tuple]]:
        """The model's outputs (tags sorted by name, as the trainer orders them) and (image, tags) rows,
        checked as Custom Vision checks them before it trains."""
        tags = {r["id"]: r for r in cur.execute("SELECT * FROM tags WHERE project_id = ?", (project["id"],))}
        wanted = {t.lower() for t in selected} if selected else set(tags)
        unknown = wanted - set(tags)
        if unknown:
            raise bad_request(
                "BadRequestInvalidIds", f"selectedTags: {sorted(unknown)[0]} is not a tag of this project"
            )
        rows = cur.execute(
            "SELECT i.id, i.sha256, i.created, x.tag_id FROM images i JOIN image_tags x ON x.image_id = i.id"
            " WHERE i.project_id = ? ORDER BY i.created, i.id",
            (project["id"],),
        ).fetchall()
        by_image: dict[str, tuple[str, str, list[str]]] = {}
        for r in rows:
            if r["tag_id"] in wanted:
                by_image.setdefault(r["id"], (r["sha256"], r["created"], []))[2].append(r["tag_id"])
        multilabel = project["classification_type"] == "Multilabel"
        counts: dict[str, int] = {}
        for _, _, tag_ids in by_image.values():
            for tag_id in tag_ids:
                counts[tag_id] = counts.get(tag_id, 0) + 1
        outputs = [t for t in tags.values() if t["id"] in counts and not (multilabel and t["type"] == "Negative")]
        if len(outputs) < 2:
            raise bad_request(
                "BadRequestTrainingValidationFailed",
                f"not enough tags for training: at least 2 tags need images (found {len(outputs)})",
            )
        few = [f"{t['name']} ({counts[t['id']]})" for t in outputs if counts[t["id"]] < MIN_IMAGES_PER_TAG]
        if few:
            raise bad_request(
                "BadRequestTrainingValidationFailed",
                f"not enough images for training: every tag needs at least {MIN_IMAGES_PER_TAG}; too few: "
                + ", ".join(sorted(few)),
            )
        if not multilabel:
            several = sum(1 for _, _, tag_ids in by_image.values() if len(tag_ids) > 1)
            if several:
                raise bad_request(
                    "BadRequestMultiClassClassificationTrainingValidationFailed",
                    f"{several} image(s) carry more than one tag in a Multiclass project; untag them or make the"
                    " project Multilabel",
                )
        labels = [
            {"id": t["id"], "name": t["name"], "type": t["type"]} for t in sorted(outputs, key=lambda t: t["name"])
        ]
        snapshot = [(image_id, sha, created, sorted(ids)) for image_id, (sha, created, ids) in by_image.items()]
        return labels, snapshot

    # -- iterations ----------------------------------------------------------------------------------------

    def iterations(self, project_id: str) -> list[dict]:
        project = self.portal.project_row(project_id)
        rows = self.db.query("SELECT * FROM iterations WHERE project_id = ? ORDER BY created, id", (project["id"],))
        return [shapes.iteration(r) for r in rows]

    def iteration(self, project_id: str, iteration_id: str) -> dict:
        return shapes.iteration(self.portal.iteration_row(self.portal.project_row(project_id)["id"], iteration_id))

    def rename(self, project_id: str, iteration_id: str, body: dict) -> dict:
        row = self.portal.iteration_row(self.portal.project_row(project_id)["id"], iteration_id)
        name = str(body.get("name") or "").strip()
        if not name or len(name) > 256:
            raise bad_request("BadRequestIterationName", "an iteration needs a name of 1-256 characters")
        with self.db.transaction() as cur:
            if cur.execute(
                "SELECT 1 FROM iterations WHERE project_id = ? AND name = ? AND id <> ?",
                (row["project_id"], name, row["id"]),
            ).fetchone():
                raise bad_request("BadRequestIterationNameNotUnique", f"another iteration is named {name!r}")
            cur.execute("UPDATE iterations SET name = ?, last_modified = ? WHERE id = ?", (name, now(), row["id"]))
        return self.iteration(row["project_id"], row["id"])

    def delete(self, project_id: str, iteration_id: str) -> None:
        row = self.portal.iteration_row(self.portal.project_row(project_id)["id"], iteration_id)
        if row["publish_name"]:
            raise bad_request(
                "BadRequestIterationIsPublished",
                f"{row['name']} is published as {row['publish_name']!r}; unpublish it first",
            )
        if row["status"] == "Training":
            raise bad_request("BadRequestTrainingAlreadyInProgress", f"{row['name']} is still training")
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM iterations WHERE id = ?", (row["id"],))
        if row["number"] is not None:
            shutil.rmtree(self.portal.project_dir(row["project_id"]) / "iterations" / str(row["number"]), True)
        shutil.rmtree(self.portal.root / "exports" / row["id"], ignore_errors=True)
        self.portal.collect_garbage()

    def _completed(self, project_id: str, iteration_id: str):
        row = self.portal.iteration_row(self.portal.project_row(project_id)["id"], iteration_id)
        if row["status"] != "Completed":
            raise bad_request(
                "BadRequestIterationIsNotTrained",
                f"{row['name']} is {row['status']}, not Completed" + (f": {row['error']}" if row["error"] else ""),
            )
        return row

    def model_dir(self, row) -> Path:
        return self.portal.project_dir(row["project_id"]) / "iterations" / str(row["number"]) / "model"

    # -- performance ---------------------------------------------------------------------------------------

    def _scored(self, row) -> tuple[list[dict], list, np.ndarray, np.ndarray]:
        labels = json.loads(row["labels"])
        rows = self.db.query(
            "SELECT x.*, b.width, b.height FROM iteration_images x JOIN blobs b ON b.sha256 = x.sha256"
            " WHERE x.iteration_id = ? AND x.probabilities IS NOT NULL ORDER BY x.created, x.image_id",
            (row["id"],),
        )
        index = {t["id"]: i for i, t in enumerate(labels)}
        targets = np.zeros((len(rows), len(labels)), np.float32)
        for r, image in enumerate(rows):
            for tag_id in json.loads(image["tag_ids"]):
                if tag_id in index:
                    targets[r, index[tag_id]] = 1
        probabilities = np.array([json.loads(r["probabilities"]) for r in rows], np.float64).reshape(len(rows), -1)
        return labels, rows, targets, probabilities

    def performance(self, project_id: str, iteration_id: str, threshold: float) -> dict:
        if not 0 <= threshold <= 1:
            raise bad_request("BadRequestInvalid", f"threshold {threshold}: between 0 and 1")
        row = self._completed(project_id, iteration_id)
        labels, _, targets, probabilities = self._scored(row)
        multilabel = row["classification_type"] == "Multilabel"
        names = [t["name"] for t in labels]
        metrics = evaluate(probabilities, targets, names, multilabel=multilabel, threshold=threshold)
        predicted = np.zeros_like(targets, dtype=bool)
        for r, probs in enumerate(probabilities):
            for tag in predicted_tags(probs, names, multilabel=multilabel, threshold=threshold):
                predicted[r, names.index(tag)] = True
        per_tag = []
        for t, (label, entry) in enumerate(zip(labels, metrics["tags"], strict=True)):
            per_tag.append(
                {
                    "id": label["id"],
                    "name": label["name"],
                    "precision": entry["precision"],
                    "precisionStdDeviation": _std_error(entry["precision"], int(predicted[:, t].sum())),
                    "recall": entry["recall"],
                    "recallStdDeviation": _std_error(entry["recall"], int(targets[:, t].sum())),
                    "averagePrecision": entry["averagePrecision"],
                }
            )
        return {
            "perTagPerformance": per_tag,
            "precision": metrics["precision"],
            "precisionStdDeviation": _std_error(metrics["precision"], int(predicted.sum())),
            "recall": metrics["recall"],
            "recallStdDeviation": _std_error(metrics["recall"], int(targets.sum())),
            "averagePrecision": metrics["meanAveragePrecision"],
        }

    def image_performances(
        self,
        project_id: str,
        iteration_id: str,
        tag_ids: list[str],
        order: str | None,
        take: int,
        skip: int,
        count: bool = False,
    ):
        row = self._completed(project_id, iteration_id)
        labels, rows, _, probabilities = self._scored(row)
        wanted = {t.lower() for t in tag_ids}
        picked = [
            (image, probs)
            for image, probs in zip(rows, probabilities, strict=True)
            if not wanted or wanted & set(json.loads(image["tag_ids"]))
        ]
        if count:
            return len(picked)
        if not 0 <= take <= MAX_TAKE or skip < 0:
            raise bad_request("BadRequestInvalid", f"take must be 0-{MAX_TAKE} and skip >= 0")
        if (order or "Newest").lower() == "newest":
            picked.reverse()
        names = {t["id"]: t["name"] for t in labels} | {
            r["id"]: r["name"]
            for r in self.db.query("SELECT id, name FROM tags WHERE project_id = ?", (row["project_id"],))
        }
        links = self.portal.links
        out = []
        for image, probs in picked[skip : skip + take]:
            predictions = sorted(
                (
                    {
                        "probability": float(p),
                        "tagId": t["id"],
                        "tagName": t["name"],
                        "boundingBox": None,
                        "tagType": t.get("type", "Regular"),
                    }
                    for t, p in zip(labels, probs, strict=True)
                ),
                key=lambda p: -p["probability"],
            )
            out.append(
                {
                    "predictions": predictions,
                    "id": image["image_id"],
                    "created": image["created"],
                    "width": image["width"],
                    "height": image["height"],
                    "imageUri": links.image(image["sha256"], "original"),
                    "thumbnailUri": links.image(image["sha256"], "thumbnail"),
                    "tags": [
                        {"tagId": t, "tagName": names.get(t, ""), "created": image["created"]}
                        for t in json.loads(image["tag_ids"])
                    ]
                    or None,
                    "regions": None,
                }
            )
        return out

    # -- publishing ----------------------------------------------------------------------------------------

    def publish(self, project_id: str, iteration_id: str, name: str, resource_id: str, overwrite: bool) -> bool:
        row = self._completed(project_id, iteration_id)
        if not name or not NAME_PATTERN.match(name):
            raise bad_request(
                "BadRequestInvalidPublishName",
                f"publish name {name!r}: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            )
        holder = self.db.one(
            "SELECT id, name FROM iterations WHERE project_id = ? AND publish_name = ? AND id <> ?",
            (row["project_id"], name, row["id"]),
        )
        if holder is not None and not overwrite:
            raise bad_request(
                "BadRequestInvalidPublishName",
                f"{name!r} is the publish name of {holder['name']}; publish with overwrite=true to move it",
            )
        project = Project.open(self.portal.project_dir(row["project_id"]))
        if row["publish_name"] and row["publish_name"] != name:
            self._unpublish_files(project, row, row["publish_name"])
        project.publish(row["number"], name, replace=True)
        mirror = self.portal.settings.published_dir
        if mirror is not None:
            copy_model_dir(self.model_dir(row), mirror / name)  # a running `edgevision serve` answers it now
        with self.db.transaction() as cur:
            if holder is not None:
                cur.execute(
                    "UPDATE iterations SET publish_name = NULL, prediction_resource_id = NULL WHERE id = ?",
                    (holder["id"],),
                )
            cur.execute(
                "UPDATE iterations SET publish_name = ?, prediction_resource_id = ?, last_modified = ? WHERE id = ?",
                (name, resource_id or "", now(), row["id"]),
            )
        log.info("%s of project %s published as %s", row["name"], row["project_id"], name)
        return True

    def unpublish(self, project_id: str, iteration_id: str) -> None:
        row = self.portal.iteration_row(self.portal.project_row(project_id)["id"], iteration_id)
        if not row["publish_name"]:
            raise bad_request("BadRequestIterationNotPublished", f"{row['name']} is not published")
        self._unpublish_files(Project.open(self.portal.project_dir(row["project_id"])), row, row["publish_name"])
        with self.db.transaction() as cur:
            cur.execute(
                "UPDATE iterations SET publish_name = NULL, prediction_resource_id = NULL, last_modified = ?"
                " WHERE id = ?",
                (now(), row["id"]),
            )

    def _unpublish_files(self, project: Project, row, name: str) -> None:
        if name in project.published():
            project.unpublish(name)
        mirror = self.portal.settings.published_dir
        manifest = mirror / name / "cvexport.manifest" if mirror is not None else None
        if manifest is not None and manifest.is_file():
            try:
                serving = json.loads(manifest.read_text(encoding="utf-8")).get("IterationId")
            except ValueError:
                serving = None
            if serving == row["id"]:  # another project's model published later under the name stays
                shutil.rmtree(manifest.parent, ignore_errors=True)

    def published(self, project_id: str, name: str):
        """The row of the iteration `project_id` publishes as `name`, or None."""
        return self.db.one(
            "SELECT * FROM iterations WHERE project_id = ? AND publish_name = ? AND status = 'Completed'",
            (project_id, name),
        )

    # -- exports -------------------------------------------------------------------------------------------

    def export(self, project_id: str, iteration_id: str, platform: str, flavor: str | None) -> dict:
        row = self._completed(project_id, iteration_id)
        if (platform or "").upper() != "ONNX":
            raise bad_request("BadRequestNotSupported", f"export platform {platform!r}: this service exports ONNX only")
        if row["domain_id"] not in shapes.COMPACT:
            raise bad_request(
                "BadRequestUnsupportedDomain",
                "only iterations of a compact domain can be exported: switch the project to a (compact) domain"
                " and train again",
            )
        flavor_name = EXPORT_FLAVORS.get((flavor or "").lower())
        if flavor_name is None:
            raise bad_request("BadRequestInvalid", f"flavor {flavor!r}: none, ONNX10, ONNX12 or Int8")
        target = self._export_file(row["id"], flavor_name)
        queued = flavor_name in QUEUED_FLAVORS and not target.is_file()
        if not queued and not target.is_file():
            _write_zip(self.model_dir(row), target)
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO exports (iteration_id, platform, flavor, status, file_name, created)"
                " VALUES (?, 'ONNX', ?, ?, ?, ?) ON CONFLICT (iteration_id, platform, flavor) DO UPDATE"
                " SET status = excluded.status WHERE exports.status = 'Failed'",
                (row["id"], flavor_name, "Exporting" if queued else "Done", target.name, now()),
            )
        return next(e for e in self.exports(project_id, iteration_id) if e["flavor"] == (flavor_name or None))

    def exports(self, project_id: str, iteration_id: str) -> list[dict]:
        row = self.portal.iteration_row(self.portal.project_row(project_id)["id"], iteration_id)
        rows = self.db.query("SELECT * FROM exports WHERE iteration_id = ? ORDER BY created", (row["id"],))
        links = self.portal.links
        return [
            {
                "platform": r["platform"],
                "status": r["status"],
                "downloadUri": links.sign(f"/files/exports/{row['id']}/{r['file_name']}")
                if r["status"] == "Done"
                else None,
                "flavor": r["flavor"] or None,
                "newerVersionAvailable": False,
            }
            for r in rows
        ]

    def build_export(self, export) -> None:
        """A queued export (the worker calls it): the flavour's model folder, zipped; Done or Failed."""
        from edgevision.portal.worker import training_list
        from edgevision.train.flavours import quantized_model_dir

        row = self.db.one("SELECT * FROM iterations WHERE id = ?", (export["iteration_id"],))
        status = "Failed"
        try:
            project = Project.open(self.portal.project_dir(row["project_id"]))
            folder = quantized_model_dir(
                project, row["number"], export["flavor"].lower(), training_list(self.portal, row)
            )
            _write_zip(folder, self._export_file(row["id"], export["flavor"]))
            status = "Done"
        except Exception as exc:  # shown as the export's status; the reason goes to the log
            log.warning("export %s of %s failed: %s", export["flavor"], row["name"], exc)
        with self.db.transaction() as cur:
            cur.execute(
                "UPDATE exports SET status = ? WHERE iteration_id = ? AND platform = ? AND flavor = ?",
                (status, export["iteration_id"], export["platform"], export["flavor"]),
            )

    def _export_file(self, iteration_id: str, flavor: str) -> Path:
        return self.portal.root / "exports" / iteration_id / f"ONNX{('-' + flavor) if flavor else ''}.zip"

    def export_path(self, iteration_id: str, file_name: str) -> Path | None:
        row = self.db.one("SELECT 1 FROM exports WHERE iteration_id = ? AND file_name = ?", (iteration_id, file_name))
        path = self.portal.root / "exports" / iteration_id / file_name
        return path if row is not None and path.is_file() else None

    # -- quick test and stored predictions -------------------------------------------------------------------

    def quick_test(self, project_id: str, data: bytes, iteration_id: str | None, store: bool, application=None) -> dict:
        project = self.portal.project_row(project_id)
        if iteration_id:
            row = self._completed(project["id"], iteration_id)
        else:
            row = self.db.one(
                "SELECT * FROM iterations WHERE project_id = ? AND status = 'Completed' ORDER BY created DESC LIMIT 1",
                (project["id"],),
            )
            if row is None:
                raise not_found("NotFoundProjectDefaultIteration", "the project has no trained iteration yet")
        model = self._model(row)
        try:
            image = decode_image(data)
        except ImageDecodeError as exc:
            raise bad_request(exc.code, exc.message) from None
        body = self.writer.body(model, model.infer(model.preprocess(image)[np.newaxis])[0])
        prediction = json.loads(body)
        if store:
            self.store_prediction(project["id"], data, prediction, application, "quicktest")
        return prediction

    def _model(self, row) -> ImageModel:
        with self._models_lock:
            model = self._models.get(row["id"])
            if model is None:
                model = self._models[row["id"]] = load_model(self.model_dir(row))
            return model

    def store_prediction(
        self,
        project_id: str,
        data: bytes,
        prediction: dict,
        application: str | None,
        source: str,
        source_key: str | None = None,
    ) -> str | None:
        """Keep the image and its result, as the cloud does for predictions made without /nostore."""
        try:
            stored = self.portal.store.put(data)
        except ImageRejected:
            return None
        prediction_id = prediction.get("id") or str(uuid.uuid4())
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO blobs (sha256, width, height, size_bytes, format) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (sha256) DO NOTHING",
                (stored.sha256, stored.width, stored.height, stored.size_bytes, stored.format),
            )
            cur.execute(
                "INSERT INTO predictions (id, project_id, iteration_id, sha256, created, application, source,"
                " source_key, predictions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source_key) DO NOTHING",
                (
                    prediction_id,
                    project_id,
                    prediction.get("iteration") or None,
                    stored.sha256,
                    prediction.get("created") or now(),
                    application,
                    source,
                    source_key,
                    json.dumps(prediction["predictions"]),
                ),
            )
        return prediction_id

    def query_predictions(self, project_id: str, token: dict) -> dict:
        project = self.portal.project_row(project_id)
        where, params = ["project_id = ?"], [project["id"]]
        if token.get("iterationId"):
            where.append("iteration_id = ?")
            params.append(str(token["iterationId"]).lower())
        if token.get("application"):
            where.append("application = ?")
            params.append(token["application"])
        for key, op in (("startTime", ">="), ("endTime", "<=")):
            if token.get(key):
                where.append(f"created {op} ?")
                params.append(str(token[key]))
        order = (token.get("orderBy") or "Newest").lower()
        if order not in {"newest", "oldest", "suggested"}:
            raise bad_request("BadRequestPredictionInvalidQueryParameters", f"orderBy {token.get('orderBy')!r}")
        direction = "ASC" if order == "oldest" else "DESC"
        rows = self.db.query(
            f"SELECT * FROM predictions WHERE {' AND '.join(where)} ORDER BY created {direction}, id", params
        )
        wanted = token.get("tags") or []
        results = [r for r in rows if _matches_tags(json.loads(r["predictions"]), wanted)]
        if order == "suggested":  # least confident first, as the Smart Labeler shows them
            results.sort(key=lambda r: max((p["probability"] for p in json.loads(r["predictions"])), default=0))
        start = int(token.get("continuation") or 0)
        limit = min(int(token.get("maxCount") or 50), MAX_TAKE)
        page = results[start : start + limit]
        more = start + limit < len(results)
        links = self.portal.links
        return {
            "token": {**token, "continuation": str(start + limit) if more else None, "maxCount": limit},
            "results": [shapes.stored_prediction(r, links) for r in page],
        }

    def delete_predictions(self, project_id: str, ids: list[str]) -> None:
        project = self.portal.project_row(project_id)
        wanted = [i.lower() for i in ids if i]
        if not wanted:
            raise bad_request("BadRequestPredictionIdsMissing", "give the ids of the predictions to delete")
        if len(wanted) > 64:
            raise bad_request("BadRequestPredictionIdsExceededCount", "at most 64 prediction ids per request")
        marks = ",".join("?" * len(wanted))
        with self.db.transaction() as cur:
            cur.execute(f"DELETE FROM predictions WHERE project_id = ? AND id IN ({marks})", [project["id"], *wanted])
        self.portal.collect_garbage()

    def prediction_images(self, project_id: str, entries: list[dict], batch_tags: list[str]) -> list[NewImage]:
        """A create-from-predictions batch as new images (the stored prediction's picture)."""
        out = []
        for entry in entries:
            row = self.db.one(
                "SELECT p.sha256, b.format FROM predictions p JOIN blobs b ON b.sha256 = p.sha256"
                " WHERE p.project_id = ? AND p.id = ?",
                (project_id, str(entry.get("id", "")).lower()),
            )
            tags = tuple(entry.get("tagIds") or ())
            if row is None:
                out.append(NewImage(None, str(entry.get("id", "")), tags, ("ErrorSource", "no such prediction")))
                continue
            out.append(NewImage(self.portal.store.path(row["sha256"], row["format"]).read_bytes(), "", tags))
        return out


def _free_name(cur, project_id: str, number: int) -> str:
    while cur.execute(
        "SELECT 1 FROM iterations WHERE project_id = ? AND name = ?", (project_id, f"Iteration {number}")
    ).fetchone():
        number += 1
    return f"Iteration {number}"


def _fingerprint(snapshot: list[tuple], kind: str) -> str:
    lines = sorted(f"{sha}\t{','.join(tags)}" for _, sha, _, tags in snapshot)
    return hashlib.sha256("\n".join([kind, *lines]).encode()).hexdigest()


def _std_error(rate: float, count: int) -> float:
    """Binomial standard error of a precision or recall measured on `count` images."""
    return float(math.sqrt(rate * (1 - rate) / count)) if count else 0.0


def _matches_tags(predictions: list[dict], wanted: list[dict]) -> bool:
    for condition in wanted:
        tag_id = str(condition.get("id", "")).lower()
        low, high = float(condition.get("minThreshold") or 0), float(condition.get("maxThreshold") or 1)
        if not any(p.get("tagId") == tag_id and low <= p["probability"] <= high for p in predictions):
            return False
    return True


def _write_zip(model_dir: Path, target: Path) -> None:
    """The Custom Vision ONNX export layout: model.onnx, labels.txt, cvexport.manifest at the top."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in MODEL_FILES:
            archive.write(model_dir / name, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, buffer.getvalue(), durable=True)
