"""/metrics moves with traffic; /openapi.json describes every route the service answers."""

from __future__ import annotations

import re

import imagegen
import requests

from edgevision.classifier.app import detect_rules, prediction_rules


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample, 0 when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}{{{re.escape(wanted)}}} (\S+)$" if labels else rf"^{re.escape(name)} (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_requests_errors_latency_and_inference(catdog_service, http: requests.Session) -> None:
    base = catdog_service.url
    before = http.get(f"{base}/metrics").text
    for _ in range(3):
        assert http.post(f"{base}/image", data=imagegen.ZEBRAS[0].read_bytes()).status_code == 200
    assert http.post(f"{base}/image", data=b"", headers={"Content-Type": "image/png"}).status_code == 400
    after = http.get(f"{base}/metrics").text
    assert after.startswith("# HELP") and "text/plain" in http.get(f"{base}/metrics").headers["Content-Type"]

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    prefix = "edgevision_classifier"
    assert moved(f"{prefix}_requests_total", route="image", status="200") == 3
    assert moved(f"{prefix}_requests_total", route="image", status="400") == 1
    assert moved(f"{prefix}_errors_total", code="BadRequestImageFormat") == 1
    assert moved(f"{prefix}_request_seconds_count", route="image") == 4
    assert moved(f"{prefix}_request_seconds_sum", route="image") > 0
    model_id = http.get(f"{base}/health").json()["modelId"]
    assert moved(f"{prefix}_inference_seconds_count", model=model_id) == 3
    assert moved(f"{prefix}_decode_seconds_count") == 3
    assert sample(after, f"{prefix}_model_info", model_id=model_id, tags="3") == 1


def test_openapi_lists_every_route(service, http: requests.Session) -> None:
    spec = http.get(f"{service.url}/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    for rule in prediction_rules("image") + prediction_rules("url") + detect_rules("image"):
        path = rule.replace("<project>", "{project}").replace("<name>", "{name}")
        assert "post" in paths[path], path
        assert "200" in paths[path]["post"]["responses"]
    for path in ("/", "/health", "/metrics", "/openapi.json"):
        assert "get" in paths[path]
    image = paths["/customvision/v3.1/prediction/{project}/classify/iterations/{name}/image"]["post"]
    assert {p["name"] for p in image["parameters"]} == {"project", "name", "application"}
    assert "imageData" in image["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert paths["/url"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("ImageUrl")
    assert spec["security"] == []  # no Prediction-Key configured
    assert len({op["operationId"] for ops in paths.values() for op in ops.values()}) == len(paths)


def test_openapi_is_valid_openapi_3(service, http: requests.Session) -> None:
    jsonschema = __import__("pytest").importorskip("jsonschema")
    spec = http.get(f"{service.url}/openapi.json").json()
    # Every $ref resolves inside the document.
    refs = re.findall(r'"\$ref": "#/components/schemas/(\w+)"', requests.compat.json.dumps(spec))
    assert refs and set(refs) <= set(spec["components"]["schemas"])
    jsonschema.Draft7Validator.check_schema(spec["components"]["schemas"]["ImagePrediction"])


def test_openapi_components_are_the_contracts_and_real_answers_match_them(service, http: requests.Session) -> None:
    jsonschema = __import__("pytest").importorskip("jsonschema")
    from edgevision.contracts import openapi_schemas

    spec = http.get(f"{service.url}/openapi.json").json()
    assert {k: v for k, v in spec["components"]["schemas"].items() if k != "ImageUrl"} == openapi_schemas()

    def validator(name: str):
        root = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
        return jsonschema.Draft202012Validator(root)

    photo = imagegen.encode(imagegen.photo(), "JPEG")
    answer = http.post(f"{service.url}/image", data=photo, timeout=30).json()
    validator("ImagePrediction").validate(answer)
    error = http.post(f"{service.url}/image", data=b"not an image", timeout=30)
    assert error.status_code == 400
    validator("ErrorBody").validate(error.json())
    assert not validator("ImagePrediction").is_valid({**answer, "predictions": [{"tagName": "x", "probability": 2}]})
