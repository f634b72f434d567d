"""The Custom Vision JSON shapes the portal answers with (field names and order as the service's), built from
database rows. Image URIs are capability URLs signed with the training key, as the cloud's are SAS URLs."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from edgevision.portal.db import Row

# The service's classification domains (object detection is not served here). Every domain trains the same
# network on the device; compact ones are the exportable ones, as in the cloud.
DOMAINS = [
    ("ee85a74c-405e-4adc-bb47-ffa8ca0c9f31", "General", False),
    ("2e37d7fb-3a54-486a-b4d6-cfc369af0018", "General [A2]", False),
    ("a8e3c40f-fb4a-466f-832a-5e457ae4a344", "General [A1]", False),
    ("c151d5b5-dd07-472a-acc8-15d29dea8518", "Food", False),
    ("ca455789-012d-4b50-9fec-5bb63841c793", "Landmarks", False),
    ("b30a91ae-e3c1-4f73-a81e-c270bff27c39", "Retail", False),
    ("0732100f-1a38-4e49-a514-c9b44c697ab5", "General (compact)", True),
    ("a1db07ca-a19a-4830-bae8-e004a42dc863", "General (compact) [S1]", True),
    ("8882951b-82cd-4c32-970b-d5f8cb8bf6d7", "Food (compact)", True),
    ("b5cfd229-2ac7-4b2b-8d0a-2b0661344894", "Landmarks (compact)", True),
    ("6b4faeda-8396-481b-9f8b-177b9fa3097f", "Retail (compact)", True),
]
DEFAULT_DOMAIN = DOMAINS[0][0]
EXPORT_PLATFORMS = ["ONNX"]
COMPACT = {domain_id for domain_id, _, compact in DOMAINS if compact}


def domain(domain_id: str, name: str, exportable: bool) -> dict:
    return {
        "id": domain_id,
        "name": name,
        "type": "Classification",
        "exportable": exportable,
        "enabled": True,
        "exportablePlatforms": EXPORT_PLATFORMS if exportable else [],
        "modelInformation": {
            "estimatedModelSizeInMegabytes": 9,
            "description": "MobileNetV2 (ImageNet) trained on the device; every domain uses the same network",
        },
    }


def project(row: Row) -> dict:
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "settings": {
            "domainId": row["domain_id"],
            "classificationType": row["classification_type"],
            "targetExportPlatforms": json.loads(row["target_export_platforms"]),
            "useNegativeSet": True,
            "detectionParameters": None,
            "imageProcessingSettings": {"augmentationMethods": {}},
            "exportModelContainerUri": None,
            "notificationQueueUri": None,
        },
        "created": row["created"],
        "lastModified": row["last_modified"],
        "thumbnailUri": None,
        "drModeEnabled": False,
        "status": "Succeeded",
    }


def tag(row: Row, image_count: int) -> dict:
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "type": row["type"],
        "imageCount": image_count,
    }


def iteration(row: Row) -> dict:
    exportable = row["status"] == "Completed" and row["domain_id"] in COMPACT
    minutes = row["training_seconds"]
    return {
        "id": row["id"],
        "name": row["name"],
        "status": row["status"],
        "created": row["created"],
        "lastModified": row["last_modified"],
        "trainedAt": row["trained_at"],
        "projectId": row["project_id"],
        "exportable": exportable,
        "exportableTo": EXPORT_PLATFORMS if exportable else [],
        "domainId": row["domain_id"],
        "classificationType": row["classification_type"],
        "trainingType": row["training_type"],
        "reservedBudgetInHours": row["reserved_budget_in_hours"],
        "trainingTimeInMinutes": None if minutes is None else max(1, round(minutes / 60)),
        "publishName": row["publish_name"],
        "originalPublishResourceId": row["prediction_resource_id"],
        "customBaseModelInfo": None,
        "trainingErrorDetails": row["error"],
    }


@dataclass(frozen=True)
class Links:
    """Absolute URLs of stored files, signed so a browser or a script can fetch them without a key header."""

    base: str  # e.g. "http://127.0.0.1:8080"
    secret: bytes | None

    def sign(self, path: str) -> str:
        if self.secret is None:
            return f"{self.base}{path}"
        token = hmac.new(self.secret, path.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{self.base}{path}?sig={token}"

    def image(self, sha256: str, kind: str) -> str:
        return self.sign(f"/files/images/{sha256}/{kind}")


def image_tags(rows: list[Row]) -> list[dict] | None:
    return [{"tagId": r["tag_id"], "tagName": r["tag_name"], "created": r["created"]} for r in rows] or None


def image(row: Row, tags: list[Row], links: Links) -> dict:
    metadata = json.loads(row["metadata"])
    return {
        "id": row["id"],
        "created": row["created"],
        "width": row["width"],
        "height": row["height"],
        "resizedImageUri": links.image(row["sha256"], "original"),
        "thumbnailUri": links.image(row["sha256"], "thumbnail"),
        "originalImageUri": links.image(row["sha256"], "original"),
        "tags": image_tags(tags),
        "regions": None,
        "metadata": metadata or None,
    }


def stored_prediction(row: Row, links: Links) -> dict:
    return {
        "resizedImageUri": links.image(row["sha256"], "original"),
        "thumbnailUri": links.image(row["sha256"], "thumbnail"),
        "originalImageUri": links.image(row["sha256"], "original"),
        "domain": None,
        "id": row["id"],
        "project": row["project_id"],
        "iteration": row["iteration_id"],
        "created": row["created"],
        "predictions": json.loads(row["predictions"]),
    }
