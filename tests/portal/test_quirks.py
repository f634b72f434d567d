"""What real clients do: header spellings, a trailing slash in the endpoint, multipart parts with no filename,
publishing the same name twice, UUID ids."""

from __future__ import annotations

import hashlib
import io
import uuid

import pytest
import requests

from tests.portal.conftest import TRAINING_KEY, aerial_images, training
from tests.portal.test_sdk_project import trained, upload

ERROR = training.models.CustomVisionErrorException


@pytest.mark.parametrize("header", ["Training-Key", "Training-key", "training-key", "TRAINING-KEY"])
def test_the_key_header_is_matched_in_any_case(portal, header: str) -> None:
    assert portal.trainer(header=header).get_projects() == []


def test_a_wrong_or_missing_key_is_401_with_a_custom_vision_error(portal) -> None:
    with pytest.raises(ERROR) as caught:
        portal.trainer(key="not-the-key").get_projects()
    assert caught.value.response.status_code == 401
    assert caught.value.error.code == "Unauthorized"
    answer = requests.get(f"{portal.url}/customvision/v3.3/training/projects", timeout=10)
    assert answer.status_code == 401 and answer.json()["code"] == "Unauthorized"


def test_an_endpoint_ending_in_a_slash_works(portal) -> None:
    trainer = portal.trainer(endpoint_suffix="/")
    project = trainer.create_project("slash")
    assert trainer.get_project(project.id).name == "slash"
    # the raw path the SDK sends, and v3.3 beside v3.4-preview
    answer = requests.get(
        f"{portal.url}//customvision/v3.3/training/projects/{project.id}", headers={"Training-Key": TRAINING_KEY}
    )
    assert answer.status_code == 200 and answer.json()["id"] == project.id


def test_images_from_data_arrive_byte_for_byte_from_parts_without_a_filename(portal) -> None:
    trainer = portal.trainer()
    project = trainer.create_project("bytes")
    tag = trainer.create_tag(project.id, "Barren")
    tile = aerial_images(1)["Barren"][0]
    summary = trainer.create_images_from_data(project.id, tile.read_bytes(), tag_ids=[tag.id])
    assert summary.is_batch_successful
    image = summary.images[0].image
    downloaded = requests.get(image.original_image_uri, timeout=10).content
    assert hashlib.sha256(downloaded).hexdigest() == hashlib.sha256(tile.read_bytes()).hexdigest()
    assert requests.get(image.thumbnail_uri, timeout=10).headers["Content-Type"] == "image/jpeg"
    # the same picture again is OKDuplicate, not a second image
    again = trainer.create_images_from_data(project.id, io.BytesIO(tile.read_bytes()), tag_ids=[tag.id])
    assert again.images[0].status == "OKDuplicate" and again.images[0].image.id == image.id
    assert trainer.get_image_count(project.id) == 1


def test_publishing_the_same_name_twice_and_ids_are_uuids(portal) -> None:
    trainer = portal.trainer()
    project = trainer.create_project("twice")
    images = aerial_images(per_tag=6)
    del images["Developed"]
    tags = {name: trainer.create_tag(project.id, name).id for name in images}
    upload(trainer, project.id, tags, images)
    iteration = trained(trainer, project.id, trainer.train_project(project.id))
    for value in (project.id, iteration.id, *tags.values()):
        assert str(uuid.UUID(value)) == value
    assert trainer.publish_iteration(project.id, iteration.id, "model", "resource")
    assert trainer.publish_iteration(project.id, iteration.id, "model", "resource")
    assert trainer.get_iteration(project.id, iteration.id).publish_name == "model"
    result = portal.predictor().classify_image_with_no_store(project.id, "model", images["Barren"][0].read_bytes())
    assert {p.tag_name for p in result.predictions} == set(images)
    assert trainer.query_predictions(project.id, training.models.PredictionQueryToken()).results == []
