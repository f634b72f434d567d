"""A multilabel project with a Negative tag, and advanced training (fine-tuning) through the Training API."""

from __future__ import annotations

import io
import zipfile

import pytest
import requests

from tests.conftest import ScoringService
from tests.portal.conftest import Portal, aerial_images, training
from tests.portal.test_sdk_project import trained

Entry = training.models.ImageFileCreateEntry
Batch = training.models.ImageFileCreateBatch


def test_a_multilabel_project_with_negatives_from_create_to_export(portal, tmp_path) -> None:
    trainer = portal.trainer()
    compact = next(d for d in trainer.get_domains() if d.name == "General (compact)")
    project = trainer.create_project("multi", classification_type="Multilabel", domain_id=compact.id)
    assert project.settings.classification_type == "Multilabel"
    images = aerial_images(per_tag=10)
    built = trainer.create_tag(project.id, "built")
    fields = trainer.create_tag(project.id, "fields")
    negative = trainer.create_tag(project.id, "Negative", type="Negative")
    entries = [Entry(name=p.name, contents=p.read_bytes(), tag_ids=[built.id]) for p in images["Developed"][:9]]
    entries += [Entry(name=p.name, contents=p.read_bytes(), tag_ids=[fields.id]) for p in images["Cultivated"][:9]]
    entries += [Entry(name=p.name, contents=p.read_bytes(), tag_ids=[negative.id]) for p in images["Barren"][:9]]
    assert trainer.create_images_from_files(project.id, Batch(images=entries)).is_batch_successful
    iteration = trained(trainer, project.id, trainer.train_project(project.id))
    assert iteration.status == "Completed", iteration.training_error_details
    assert iteration.classification_type == "Multilabel"
    performance = trainer.get_iteration_performance(project.id, iteration.id)
    assert {t.name for t in performance.per_tag_performance} == {"built", "fields"}
    trainer.publish_iteration(project.id, iteration.id, "multi", "resource")
    predictor = portal.predictor()
    result = predictor.classify_image(project.id, "multi", images["Developed"][9].read_bytes())
    assert result.predictions[0].tag_name == "built"
    assert {p.tag_name for p in result.predictions} == {"built", "fields"}
    # a negative combined with a regular tag is refused per image
    both = Entry(name="x.jpg", contents=images["Barren"][9].read_bytes(), tag_ids=[negative.id, built.id])
    summary = trainer.create_images_from_files(project.id, Batch(images=[both]))
    assert summary.images[0].status == "ErrorNegativeAndRegularTagOnSameImage"
    # the export, served by a real `edgevision serve`, answers as the portal did
    export = trainer.export_iteration(project.id, iteration.id, "ONNX")
    zipfile.ZipFile(io.BytesIO(requests.get(export.download_uri, timeout=30).content)).extractall(tmp_path / "m")
    served = ScoringService(tmp_path / "m")
    try:
        answer = requests.post(f"{served.url}/image", data=images["Developed"][9].read_bytes(), timeout=30).json()
        assert [p["tagName"] for p in answer["predictions"]] == [p.tag_name for p in result.predictions]
        for mine, theirs in zip(answer["predictions"], result.predictions, strict=True):
            assert abs(mine["probability"] - theirs.probability) < 1e-5
    finally:
        served.close()


@pytest.mark.slow
def test_advanced_training_through_the_training_api(tmp_path) -> None:
    pytest.importorskip("torch", reason="advanced training needs the finetune extra (torch)")
    portal = Portal(tmp_path / "data", env={"PORTAL_ADVANCED_MAX_MINUTES": "1.5"})
    try:
        trainer = portal.trainer()
        compact = next(d for d in trainer.get_domains() if d.name == "General (compact)")
        project = trainer.create_project("advanced", domain_id=compact.id)
        images = aerial_images(per_tag=10)
        tags = {name: trainer.create_tag(project.id, name).id for name in images}
        entries = [
            Entry(name=p.name, contents=p.read_bytes(), tag_ids=[tags[n]]) for n, ps in images.items() for p in ps[:9]
        ]
        trainer.create_images_from_files(project.id, Batch(images=entries))
        queued = trainer.train_project(project.id, training_type="Advanced", reserved_budget_in_hours=1)
        assert queued.training_type == "Advanced"
        iteration = trained(trainer, project.id, queued, timeout=400)
        assert iteration.status == "Completed", iteration.training_error_details
        # Scored on the held-out test fold only, as the advanced trainer evaluates
        assert 0 < trainer.get_image_performance_count(project.id, iteration.id) < len(entries)
        assert trainer.get_iteration_performance(project.id, iteration.id).average_precision > 0.5
        trainer.publish_iteration(project.id, iteration.id, "advanced", "resource")
        result = portal.predictor().classify_image(project.id, "advanced", images["Developed"][9].read_bytes())
        assert result.predictions[0].tag_name == "Developed"
        assert trainer.export_iteration(project.id, iteration.id, "ONNX").status == "Done"
    finally:
        portal.close()
