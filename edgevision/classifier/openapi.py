"""`GET /openapi.json`: an OpenAPI 3 description generated from the app's own routes, so it cannot drift."""

from __future__ import annotations

import re

from flask import Flask

from edgevision import __version__
from edgevision.classifier.settings import ClassifierSettings
from edgevision.contracts import openapi_schemas

PARAM = re.compile(r"<(?:[^:>]+:)?([^>]+)>")

ERROR = {"$ref": "#/components/schemas/ErrorBody"}
SCHEMAS = {
    **openapi_schemas(),  # ImagePrediction, Prediction, BoundingBox, ErrorBody: from edgevision.contracts
    "ImageUrl": {
        "type": "object",
        "required": ["url"],
        "properties": {"url": {"type": "string", "format": "uri", "description": "http:// or https:// only."}},
    },
}
IMAGE_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["imageData"],
                "properties": {"imageData": {"type": "string", "format": "binary"}},
            }
        },
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "image/*": {"schema": {"type": "string", "format": "binary"}},
    },
}
URL_BODY = {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ImageUrl"}}}}
PREDICTION_RESPONSES = {
    "200": {
        "description": "The predictions.",
        "headers": {"X-Model-Id": {"schema": {"type": "string"}, "description": "The model that answered."}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ImagePrediction"}}},
    },
    "400": {"description": "Bad image, URL or body.", "content": {"application/json": {"schema": ERROR}}},
    "401": {"description": "Missing or wrong Prediction-Key.", "content": {"application/json": {"schema": ERROR}}},
    "413": {"description": "Image over MAX_IMAGE_BYTES.", "content": {"application/json": {"schema": ERROR}}},
    "415": {"description": "Unsupported content type.", "content": {"application/json": {"schema": ERROR}}},
    "429": {
        "description": "Too many wrong Prediction-Keys from this address of late.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds until it may try again."}},
        "content": {"application/json": {"schema": ERROR}},
    },
}
SIMPLE = {
    "index": ("Short description of the service.", "text/plain", {"type": "string"}),
    "health": ("Model loaded: its id and description.", "application/json", {"type": "object"}),
    "metrics": ("Prometheus metrics.", "text/plain", {"type": "string"}),
    "openapi": ("This document.", "application/json", {"type": "object"}),
}


def openapi_spec(app: Flask, settings: ClassifierSettings) -> dict:
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        is_url = rule.rule.endswith(("/url", "/url/nostore"))
        if rule.endpoint == "static" or (is_url and not settings.url_enabled):
            continue
        path = PARAM.sub(r"{\1}", rule.rule)
        paths[path] = {method.lower(): _operation(rule.endpoint, path, settings) for method in _methods(rule)}
    security = [{"PredictionKey": []}] if settings.prediction_key else []
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "edgevision ImageClassifierService",
            "version": __version__,
            "description": "The Custom Vision export container's prediction API (also the cloud v3.0/v3.1 paths)"
            " over an ONNX classification model.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"PredictionKey": {"type": "apiKey", "in": "header", "name": "Prediction-Key"}},
        },
        "security": security,
    }


def _methods(rule) -> list[str]:
    return sorted(m for m in rule.methods or () if m not in {"HEAD", "OPTIONS"})


def _operation(endpoint: str, path: str, settings: ClassifierSettings) -> dict:
    operation_id = re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_") or "root"
    if endpoint in SIMPLE:
        summary, mimetype, schema = SIMPLE[endpoint]
        return {
            "operationId": operation_id,
            "summary": summary,
            "security": [],
            "responses": {"200": {"description": "OK", "content": {mimetype: {"schema": schema}}}},
        }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{([^}]+)}", path)
    ]
    parameters.append(
        {
            "name": "application",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "Ignored.",
        }
    )
    if endpoint == "detect":
        summary = "Object detection: not supported by a classification model (400 BadRequestNotSupported)."
    elif endpoint == "url":
        summary = "Classify the image at a URL."
    else:
        summary = "Classify an image (multipart field imageData, or the raw body)."
    if "{name}" in path and endpoint != "detect":
        summary += " Serves the iteration published under {name} when there is one, else the default model."
    return {
        "operationId": operation_id,
        "summary": summary,
        "parameters": parameters,
        "requestBody": URL_BODY if path.endswith(("/url", "/url/nostore")) else IMAGE_BODY,
        "responses": PREDICTION_RESPONSES,
    }
