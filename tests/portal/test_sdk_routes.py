"""The rest of the SDK's classification surface on one trained project: images from URLs, listings and paging,
tag edits, iteration rename, per-image performance, quick tests, stored predictions, the v3.0 prediction path."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.portal.conftest import AERIAL_MINI, PREDICTION_KEY, Portal, aerial_images, training
from tests.portal.test_sdk_project import trained, upload

models = training.models


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def tiles_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(AERIAL_MINI)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Iterator[tuple]:
    # the tiles come from a loopback server: the SSRF guard is opened for this test only
    portal = Portal(tmp_path_factory.mktemp("routes") / "data", env={"PORTAL_URL_ALLOW_PRIVATE": "true"})
    trainer = portal.trainer()
    project = trainer.create_project("routes")
    images = aerial_images(per_tag=8)
    del images["Cultivated"]
    tags = {name: trainer.create_tag(project.id, name).id for name in images}
    upload(trainer, project.id, tags, images)
    iteration = trained(trainer, project.id, trainer.train_project(project.id))
    yield portal, trainer, project, tags, iteration
    portal.close()


def relative(path: Path) -> str:
    return path.relative_to(AERIAL_MINI).as_posix()


def test_images_from_urls_and_listings(project, tiles_server: str) -> None:
    _, trainer, project, tags, _ = project
    extra = aerial_images(per_tag=10)["Cultivated"][:3]
    batch = models.ImageUrlCreateBatch(
        images=[models.ImageUrlCreateEntry(url=f"{tiles_server}/{relative(p)}") for p in extra]
        + [models.ImageUrlCreateEntry(url=f"{tiles_server}/nope.jpg")]
    )
    summary = trainer.create_images_from_urls(project.id, batch)
    assert [i.status for i in summary.images] == ["OK", "OK", "OK", "ErrorSource"]
    assert not summary.is_batch_successful
    assert trainer.get_untagged_image_count(project.id) == 3
    untagged = trainer.get_untagged_images(project.id)
    assert {i.id for i in untagged} == {i.image.id for i in summary.images[:3]}
    # paging: two pages of the 16 tagged images, newest first, no overlap
    first = trainer.get_tagged_images(project.id, take=10, skip=0)
    second = trainer.get_tagged_images(project.id, take=10, skip=10)
    assert len(first) == 10 and len(second) == 6 and not {i.id for i in first} & {i.id for i in second}
    oldest = trainer.get_tagged_images(project.id, order_by="Oldest", take=16)
    assert [i.id for i in oldest] == [i.id for i in reversed(first + second)]
    only = trainer.get_tagged_images(project.id, tag_ids=[tags["Barren"]], take=50)
    assert len(only) == 8 and all(i.tags[0].tag_name == "Barren" for i in only)
    assert trainer.get_image_count(project.id, tagging_status="Untagged") == 3
    by_id = trainer.get_images_by_ids(project.id, image_ids=[first[0].id, second[0].id])
    assert [i.id for i in by_id] == [first[0].id, second[0].id]
    # the iteration's images are the snapshot it trained on
    iteration = trainer.get_iterations(project.id)[0]
    assert len(trainer.get_tagged_images(project.id, iteration_id=iteration.id, take=50)) == 16
    trainer.delete_images(project.id, image_ids=[i.image.id for i in summary.images[:3]])
    assert trainer.get_untagged_image_count(project.id) == 0


def test_tag_edits_and_iteration_rename(project) -> None:
    _, trainer, project, tags, iteration = project
    image = trainer.get_tagged_images(project.id, tag_ids=[tags["Developed"]], take=1)[0]
    extra = trainer.create_tag(project.id, "roofs", description="built up")
    created = trainer.create_image_tags(project.id, [models.ImageTagCreateEntry(image_id=image.id, tag_id=extra.id)])
    assert len(created.created) == 1
    again = trainer.create_image_tags(project.id, [models.ImageTagCreateEntry(image_id=image.id, tag_id=extra.id)])
    assert len(again.duplicated) == 1
    assert trainer.get_tag(project.id, extra.id).image_count == 1
    trainer.delete_image_tags(project.id, image_ids=[image.id], tag_ids=[extra.id])
    assert trainer.get_tag(project.id, extra.id).image_count == 0
    renamed = trainer.update_tag(project.id, extra.id, models.Tag(name="rooftops", description="x", type="Regular"))
    assert renamed.name == "rooftops"
    trainer.delete_tag(project.id, extra.id)
    assert "rooftops" not in {t.name for t in trainer.get_tags(project.id)}
    # the iteration's own tags and counts
    assert {t.name: t.image_count for t in trainer.get_tags(project.id, iteration_id=iteration.id)} == {
        "Barren": 8,
        "Developed": 8,
    }
    updated = trainer.update_iteration(project.id, iteration.id, "first try")
    assert updated.name == "first try"
    current = trainer.get_project(project.id)
    current.description = "aerial"
    updated = trainer.update_project(project.id, current)
    assert updated.description == "aerial" and trainer.get_project(project.id).description == "aerial"


def test_image_performances_and_quick_tests(project, tiles_server: str) -> None:
    _, trainer, project, tags, iteration = project
    performances = trainer.get_image_performances(project.id, iteration.id, tag_ids=[tags["Barren"]], take=50)
    assert len(performances) == 8 == trainer.get_image_performance_count(project.id, iteration.id, [tags["Barren"]])
    for image in performances:
        assert {p.tag_name for p in image.predictions} == {"Barren", "Developed"}
        assert abs(sum(p.probability for p in image.predictions) - 1) < 1e-3
    held_out = aerial_images(per_tag=10)["Developed"][9]
    result = trainer.quick_test_image(project.id, held_out.read_bytes(), iteration_id=iteration.id)
    assert result.predictions[0].tag_name == "Developed" and result.iteration == iteration.id
    by_url = trainer.quick_test_image_url(project.id, url=f"{tiles_server}/{relative(held_out)}", store=False)
    assert by_url.predictions[0].tag_name == "Developed"
    stored = trainer.query_predictions(project.id, models.PredictionQueryToken())
    assert [r.id for r in stored.results] == [result.id]
    trainer.delete_prediction(project.id, ids=[result.id])
    assert trainer.query_predictions(project.id, models.PredictionQueryToken()).results == []


def test_the_v3_0_prediction_path_and_unpublished_names(project) -> None:
    portal, trainer, project, _, iteration = project
    trainer.publish_iteration(project.id, iteration.id, "v30", "resource")
    tile = aerial_images(per_tag=10)["Barren"][9].read_bytes()
    base = f"{portal.url}/customvision/v3.0/prediction/{project.id}/classify/iterations"
    answer = requests.post(f"{base}/v30/image/nostore", data=tile, headers={"Prediction-Key": PREDICTION_KEY})
    assert answer.status_code == 200 and answer.json()["predictions"][0]["tagName"] == "Barren"
    missing = requests.post(f"{base}/other/image", data=tile, headers={"Prediction-Key": PREDICTION_KEY})
    assert missing.status_code == 404 and missing.json()["code"] == "NotFound"
    trainer.unpublish_iteration(project.id, iteration.id)
    gone = requests.post(f"{base}/v30/image", data=tile, headers={"Prediction-Key": PREDICTION_KEY})
    assert gone.status_code == 404
