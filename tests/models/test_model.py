"""The scoring core on real models: the bundled ImageNet MobileNetV2 and real Custom Vision exports."""

from __future__ import annotations

import imagegen
import numpy as np
import pytest

from edgevision.models import ImageModel, ModelLoadError, load_model
from tests.conftest import shared_path

EXPORTS = "models/customvision-exports"


def top(predictions, n: int = 3) -> list[str]:
    return [p.tag_name for p in predictions[:n]]


@pytest.mark.parametrize("path", imagegen.ZEBRAS, ids=lambda p: p.stem)
def test_bundled_zebras_are_zebras(default_model: ImageModel, path) -> None:
    predictions = default_model.predict(path.read_bytes())
    assert predictions[0].tag_name == "zebra"


def test_bundled_elephants_are_elephants(default_model: ImageModel) -> None:
    predictions = default_model.predict(imagegen.ELEPHANTS.read_bytes())
    assert {"African elephant", "Indian elephant", "tusker"} & set(top(predictions))


@pytest.mark.parametrize("name", ["2014_000006.jpg", "2014_000007.jpg", "2014_000002.jpg"])
def test_shared_wildlife_photos(default_model: ImageModel, name: str) -> None:
    path = shared_path(f"media/photos/wildlife-wildbook/{name}")
    expected = {"zebra"} if name != "2014_000002.jpg" else {"African elephant", "Indian elephant", "tusker"}
    assert expected & set(top(default_model.predict(path.read_bytes())))


def test_default_model_describes_itself(default_model: ImageModel) -> None:
    info = default_model.describe()
    assert info["tags"] == 1000 == len(default_model.labels)
    assert info["inputSize"] == [224, 224]
    assert not default_model.multilabel and not default_model.classic
    # Our models carry Custom Vision style project/iteration ids.
    assert len(default_model.project_id) == 36 and len(default_model.iteration_id) == 36
    assert default_model.model_id.startswith("imagenet-mobilenetv2@")


def test_probabilities_are_a_sorted_distribution(default_model: ImageModel) -> None:
    predictions = default_model.predict(imagegen.ELEPHANTS.read_bytes())
    probabilities = [p.probability for p in predictions]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
    assert predictions[0].to_json().keys() == {"tagName", "probability", "tagId", "boundingBox"}


def test_batch_scores_like_single_images(default_model: ImageModel) -> None:
    images = [imagegen.photo(p) for p in (*imagegen.ZEBRAS, imagegen.ELEPHANTS)]
    batch = default_model.predict_many(images)
    for image, predictions in zip(images, batch, strict=True):
        single = default_model.predict_image(image)
        assert top(single, 5) == top(predictions, 5)
        assert single[0].probability == pytest.approx(predictions[0].probability, abs=1e-5)


def test_classic_export_kitten_is_a_cat() -> None:
    folder = shared_path(f"{EXPORTS}/cat-or-dog")
    model = load_model(folder)
    assert model.classic and not model.multilabel
    assert model.preprocess.input_width == 227 and model.preprocess.bgr
    predictions = model.predict((folder / "sample_kitten_224.png").read_bytes())
    assert predictions[0].tag_name == "cat"
    assert predictions[0].probability >= 0.9
    assert sorted(model.labels) == sorted(["cat", "dog", "Negative"])


def test_multilabel_export_returns_its_five_tags_independently() -> None:
    model = load_model(shared_path(f"{EXPORTS}/computer-multilabel"))
    assert model.multilabel
    sums = []
    for path in (*imagegen.ZEBRAS, imagegen.ELEPHANTS):
        predictions = model.predict(path.read_bytes())
        assert sorted(p.tag_name for p in predictions) == ["controller", "keyboard", "laptop", "monitor", "mouse"]
        assert all(0.0 <= p.probability <= 1.0 for p in predictions)
        sums.append(sum(p.probability for p in predictions))
    # Independent sigmoids: the five probabilities do not form one distribution.
    assert any(abs(total - 1.0) > 0.01 for total in sums)


def test_onnx_1_0_export_is_refused_with_one_line() -> None:
    folder = shared_path(f"{EXPORTS}/legacy-onnx10-plankton")
    with pytest.raises(ModelLoadError) as caught:
        load_model(folder)
    message = str(caught.value)
    assert "\n" not in message
    assert str(folder / "model.onnx") in message
    assert "opset 1" in message and "ONNX 1.0" in message


def test_missing_model_folder_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match=r"expected one \.onnx model"):
        load_model(tmp_path)
    with pytest.raises(ModelLoadError, match="no such model"):
        load_model(tmp_path / "absent")


def test_labels_that_do_not_match_the_model_are_refused(tmp_path) -> None:
    from edgevision.models import DEFAULT_MODEL_DIR

    (tmp_path / "model.onnx").symlink_to(DEFAULT_MODEL_DIR / "model.onnx")
    (tmp_path / "labels.txt").write_text("a\nb\n")
    with pytest.raises(ModelLoadError, match=r"scores 1000 tags but labels\.txt lists 2"):
        load_model(tmp_path)


def test_intra_op_threads_do_not_change_scores() -> None:
    image = imagegen.photo(imagegen.ELEPHANTS)
    one = load_model(intra_op_threads=1).predict_image(image)
    two = load_model(intra_op_threads=2).predict_image(image)
    assert top(one, 5) == top(two, 5)
    assert np.allclose([p.probability for p in one[:5]], [p.probability for p in two[:5]], atol=1e-5)
