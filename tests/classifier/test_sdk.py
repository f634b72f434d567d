"""The official Custom Vision prediction SDK, pointed at the service, gets correct answers."""

from __future__ import annotations

import imagegen
import pytest

from tests.classifier.conftest import KEY

prediction = pytest.importorskip(
    "azure.cognitiveservices.vision.customvision.prediction", reason="the Custom Vision SDK (dev extra) is absent"
)
msrest_auth = pytest.importorskip("msrest.authentication")

PROJECT = "3f4c1b7e-8a2d-4c39-9d55-0a1b2c3d4e5f"


def client(service, key: str = KEY):
    credentials = msrest_auth.ApiKeyCredentials(in_headers={"Prediction-key": key})
    return prediction.CustomVisionPredictionClient(f"http://127.0.0.1:{service.port}", credentials)


def test_classify_image(secured_service) -> None:
    with imagegen.ZEBRAS[0].open("rb") as stream:
        result = client(secured_service).classify_image(PROJECT, "Iteration1", stream)
    assert result.predictions[0].tag_name == "zebra"
    assert result.predictions[0].probability > 0.5
    assert result.created.tzinfo is not None
    assert result.project and result.iteration and result.id


def test_classify_image_with_no_store(secured_service) -> None:
    with imagegen.ELEPHANTS.open("rb") as stream:
        result = client(secured_service).classify_image_with_no_store(PROJECT, "Iteration1", stream, application="a")
    assert "African elephant" in [p.tag_name for p in result.predictions[:3]]


def test_classify_image_url(secured_service, photo_server: str) -> None:
    result = client(secured_service).classify_image_url(PROJECT, "Iteration1", url=f"{photo_server}/2014_000007.jpg")
    assert result.predictions[0].tag_name == "zebra"


def test_wrong_key_is_a_custom_vision_error(secured_service) -> None:
    error_type = prediction.models.CustomVisionErrorException
    with imagegen.ZEBRAS[0].open("rb") as stream, pytest.raises(error_type) as caught:
        client(secured_service, key="wrong").classify_image(PROJECT, "Iteration1", stream)
    assert caught.value.error.code == "Unauthorized"
    assert caught.value.response.status_code == 401


def test_bad_image_is_a_custom_vision_error(secured_service) -> None:
    import io

    with pytest.raises(prediction.models.CustomVisionErrorException) as caught:
        client(secured_service).classify_image(PROJECT, "Iteration1", io.BytesIO(imagegen.truncated_jpeg()))
    assert caught.value.error.code == "BadRequestImageFormat"


def test_an_endpoint_ending_in_a_slash_reaches_the_service(secured_service) -> None:
    # The SDK joins the endpoint and `/customvision/...`, so such a client asks for `//customvision/...`.
    credentials = msrest_auth.ApiKeyCredentials(in_headers={"Prediction-key": KEY})
    slash = prediction.CustomVisionPredictionClient(f"http://127.0.0.1:{secured_service.port}/", credentials)
    with imagegen.ZEBRAS[0].open("rb") as stream:
        result = slash.classify_image(PROJECT, "Iteration1", stream)
    assert result.predictions[0].tag_name == "zebra"
