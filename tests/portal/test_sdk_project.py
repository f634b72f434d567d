"""The official Training and Prediction SDK clients drive a whole project on a real portal process."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import requests

from tests.conftest import ScoringService, wait_until
from tests.portal.conftest import BACKENDS, aerial_images, training


def upload(trainer, project_id: str, tags: dict[str, str], images: dict[str, list[Path]]):
    entries = [
        training.models.ImageFileCreateEntry(name=path.name, contents=path.read_bytes(), tag_ids=[tags[name]])
        for name, paths in images.items()
        for path in paths
    ]
    return trainer.create_images_from_files(project_id, training.models.ImageFileCreateBatch(images=entries))


def trained(trainer, project_id: str, iteration, timeout: float = 240):
    def done():
        current = trainer.get_iteration(project_id, iteration.id)
        return current if current.status != "Training" else None

    return wait_until(done, timeout=timeout, what="training to finish")


@pytest.mark.parametrize("portal", BACKENDS, indirect=True)  # the worker process trains and exports on both
def test_a_multiclass_project_from_create_to_export(portal, tmp_path: Path) -> None:
    trainer = portal.trainer()
    compact = next(d for d in trainer.get_domains() if d.name == "General (compact)")
    assert compact.exportable and compact.type == "Classification"
    project = trainer.create_project("land use", description="aerial tiles", domain_id=compact.id)
    assert project.settings.classification_type == "Multiclass"
    images = aerial_images(per_tag=8)
    held_out = {name: paths[-1] for name, paths in aerial_images(per_tag=10).items()}
    tags = {name: trainer.create_tag(project.id, name).id for name in images}
    summary = upload(trainer, project.id, tags, images)
    assert summary.is_batch_successful, [i.status for i in summary.images]
    assert trainer.get_tagged_image_count(project.id) == 24
    assert {t.name: t.image_count for t in trainer.get_tags(project.id)} == dict.fromkeys(images, 8)

    iteration = trainer.train_project(project.id)
    assert iteration.status == "Training"
    iteration = trained(trainer, project.id, iteration)
    assert iteration.status == "Completed", iteration.training_error_details
    performance = trainer.get_iteration_performance(project.id, iteration.id, threshold=0.5)
    assert {t.name for t in performance.per_tag_performance} == set(images)
    assert 0 < performance.precision <= 1 and 0 < performance.average_precision <= 1
    strict = trainer.get_iteration_performance(project.id, iteration.id, threshold=0.99)
    assert strict.recall <= performance.recall
    assert trainer.get_image_performance_count(project.id, iteration.id) == 24

    assert trainer.publish_iteration(project.id, iteration.id, "landuse", "resource-id")
    predictor = portal.predictor()
    for name, path in held_out.items():
        result = predictor.classify_image(project.id, "landuse", path.read_bytes())
        assert result.predictions[0].tag_name == name
        assert result.iteration == iteration.id and result.project == project.id
    stored = trainer.query_predictions(project.id, training.models.PredictionQueryToken(order_by="Newest"))
    assert len(stored.results) == 3

    assert trainer.export_iteration(project.id, iteration.id, "ONNX").status == "Done"
    queued = trainer.export_iteration(project.id, iteration.id, "ONNX", flavor="Int8")
    assert queued.status in {"Exporting", "Done"}
    for flavor in (None, "Int8"):
        export = wait_until(
            lambda f=flavor: next(
                (e for e in trainer.get_exports(project.id, iteration.id) if e.flavor == f and e.status != "Exporting"),
                None,
            ),
            timeout=180,
            what=f"the {flavor or 'float'} export",
        )
        assert export.status == "Done"
        archive = zipfile.ZipFile(io.BytesIO(requests.get(export.download_uri, timeout=30).content))
        assert sorted(archive.namelist()) == ["cvexport.manifest", "labels.txt", "model.onnx"]
        model_dir = tmp_path / f"export-{flavor}"
        archive.extractall(model_dir)
        served = ScoringService(model_dir)
        try:
            for name, path in held_out.items():
                answer = requests.post(f"{served.url}/image", data=path.read_bytes(), timeout=30).json()
                assert answer["predictions"][0]["tagName"] == name
        finally:
            served.close()
    # the int8 flavour is the quantized model (a quarter of the float file's size), with its provenance
    int8_model = (tmp_path / "export-Int8" / "model.onnx").stat().st_size
    assert int8_model < (tmp_path / "export-None" / "model.onnx").stat().st_size / 2
    assert "Quantization" in (tmp_path / "export-Int8" / "cvexport.manifest").read_text()
    # published into the scoring service's PUBLISHED_DIR as well
    assert (portal.data.parent / "published" / "landuse" / "model.onnx").is_file()
    # the rows went where the portal was told: SQLite in the data folder, or only the PostgreSQL database
    assert (portal.data / "portal.db").is_file() == (portal.database is None)
