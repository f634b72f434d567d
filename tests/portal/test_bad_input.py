"""Bad input gets the service's status and code, per image where the cloud answers per image; nothing is lost."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.portal.conftest import TRAINING_KEY, aerial_images, training
from tests.portal.test_sdk_project import trained, upload

ERROR = training.models.CustomVisionErrorException
Entry = training.models.ImageFileCreateEntry
Batch = training.models.ImageFileCreateBatch


def refused(call, *args, **kwargs) -> tuple[int, str, str]:
    with pytest.raises(ERROR) as caught:
        call(*args, **kwargs)
    return caught.value.response.status_code, caught.value.error.code, caught.value.error.message


@pytest.fixture
def project(portal):
    trainer = portal.trainer()
    project = trainer.create_project("bad input")
    return trainer, project, trainer.create_tag(project.id, "Barren")


def test_non_images_and_oversized_images_are_per_image_errors_in_a_207(portal, project) -> None:
    trainer, project, tag = project
    good = aerial_images(2)["Barren"]
    entries = [
        Entry(name="a.jpg", contents=good[0].read_bytes()),
        Entry(name="notes.txt", contents=b"not an image at all"),
        Entry(name="huge.jpg", contents=b"\xff\xd8" + b"\0" * (6 * 1024 * 1024 + 10)),
        Entry(name="b.jpg", contents=good[1].read_bytes()),
    ]
    answer = requests.post(
        f"{portal.url}/customvision/v3.4-preview/training/projects/{project.id}/images/files",
        json=trainer._serialize.body(Batch(images=entries, tag_ids=[tag.id]), "ImageFileCreateBatch"),
        headers={"Training-Key": TRAINING_KEY},
        timeout=60,
    )
    assert answer.status_code == 207
    body = answer.json()
    assert body["isBatchSuccessful"] is False
    assert [i["status"] for i in body["images"]] == ["OK", "ErrorImageFormat", "ErrorImageSize", "OK"]
    assert trainer.get_tagged_image_count(project.id) == 2


def test_65_images_in_one_batch_are_refused_whole(portal, project) -> None:
    trainer, project, tag = project
    tile = aerial_images(1)["Barren"][0].read_bytes()
    batch = Batch(images=[Entry(name=f"{i}.jpg", contents=tile) for i in range(65)], tag_ids=[tag.id])
    assert refused(trainer.create_images_from_files, project.id, batch)[:2] == (400, "BadRequestExceededBatchSize")
    assert trainer.get_image_count(project.id) == 0


def test_unknown_ids_are_404_with_the_services_codes(portal, project) -> None:
    trainer, project, _ = project
    missing = str(uuid.uuid4())
    assert refused(trainer.get_project, missing)[:2] == (404, "NotFoundProject")
    assert refused(trainer.get_iteration, project.id, missing)[:2] == (404, "NotFoundIteration")
    assert refused(trainer.get_tag, project.id, missing)[:2] == (404, "NotFoundTag")
    assert refused(trainer.get_project, "not-a-uuid")[:2] == (404, "NotFoundProject")


def test_a_tag_from_another_project_is_refused(portal, project) -> None:
    trainer, project, _ = project
    other = trainer.create_project("other")
    foreign = trainer.create_tag(other.id, "Barren")
    tile = aerial_images(1)["Barren"][0].read_bytes()
    summary = trainer.create_images_from_files(
        project.id, Batch(images=[Entry(name="a.jpg", contents=tile)], tag_ids=[foreign.id])
    )
    assert summary.images[0].status == "ErrorInvalidTag"
    added = trainer.create_images_from_data(project.id, tile)
    pair = training.models.ImageTagCreateEntry(image_id=added.images[0].image.id, tag_id=foreign.id)
    code = refused(trainer.create_image_tags, project.id, [pair])[:2]
    assert code == (400, "BadRequestInvalidIds")


def test_training_with_too_few_images_names_the_tags(portal, project) -> None:
    trainer, project, barren = project
    images = aerial_images(per_tag=6)
    tags = {"Barren": barren.id, "Developed": trainer.create_tag(project.id, "Developed").id}
    upload(trainer, project.id, tags, {"Barren": images["Barren"], "Developed": images["Developed"][:3]})
    status, code, message = refused(trainer.train_project, project.id)
    assert (status, code) == (400, "BadRequestTrainingValidationFailed")
    assert "Developed (3)" in message and "Barren" not in message
    assert trainer.get_iterations(project.id) == []


def test_training_twice_unchanged_and_deleting_a_published_iteration(portal, project) -> None:
    trainer, project, barren = project
    images = aerial_images(per_tag=6)
    tags = {"Barren": barren.id, "Developed": trainer.create_tag(project.id, "Developed").id}
    upload(trainer, project.id, tags, {name: images[name] for name in tags})
    iteration = trained(trainer, project.id, trainer.train_project(project.id))
    assert refused(trainer.train_project, project.id)[:2] == (400, "BadRequestTrainingNotNeeded")
    trainer.publish_iteration(project.id, iteration.id, "live", "resource")
    assert refused(trainer.delete_iteration, project.id, iteration.id)[:2] == (400, "BadRequestIterationIsPublished")
    assert refused(trainer.delete_project, project.id)[:2] == (400, "BadRequestIterationIsPublished")
    trainer.unpublish_iteration(project.id, iteration.id)
    assert refused(trainer.unpublish_iteration, project.id, iteration.id)[:2] == (
        400,
        "BadRequestIterationNotPublished",
    )
    trainer.delete_iteration(project.id, iteration.id)
    assert trainer.get_iterations(project.id) == []


def test_bad_training_and_export_requests(portal, project) -> None:
    trainer, project, _ = project
    code = refused(trainer.train_project, project.id, training_type="Advanced", reserved_budget_in_hours=0)[:2]
    assert code == (400, "BadRequestReservedBudgetInHoursNotEnoughForAdvancedTraining")
    assert refused(trainer.create_tag, project.id, "Barren")[:2] == (400, "BadRequestTagNameNotUnique")
    assert refused(trainer.create_project, "bad input")[:2] == (400, "BadRequestProjectNameNotUnique")
    bad_domain = refused(trainer.create_project, "x", domain_id=str(uuid.uuid4()))[:2]
    assert bad_domain == (400, "BadRequestProjectUnknownDomain")
    assert refused(trainer.get_domain, str(uuid.uuid4()))[:2] == (404, "NotFoundDomain")
    answer = requests.post(
        f"{portal.url}/customvision/v3.3/training/projects/{project.id}/images/files",
        data=b"{not json",
        headers={"Training-Key": TRAINING_KEY, "Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 400 and answer.json()["code"] == "BadRequest"


def test_a_body_over_the_limit_is_a_json_413(tmp_path) -> None:
    from tests.portal.conftest import Portal

    small = Portal(tmp_path / "data", env={"PORTAL_MAX_REQUEST_BYTES": "100000"})
    try:
        trainer = small.trainer()
        project = trainer.create_project("limits")
        answer = requests.post(
            f"{small.url}/customvision/v3.3/training/projects/{project.id}/images",
            data=b"\xff" * 150_000,
            headers={"Training-Key": TRAINING_KEY, "Content-Type": "application/octet-stream"},
            timeout=30,
        )
        assert answer.status_code == 413 and answer.json()["code"] == "BadRequestImageSizeBytes"
        assert trainer.get_image_count(project.id) == 0
    finally:
        small.close()
