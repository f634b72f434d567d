"""Microsoft's Python quickstart for image classification runs unchanged against the portal."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import PYTHON
from tests.portal.conftest import PREDICTION_KEY, TRAINING_KEY, aerial_images

QUICKSTART = Path(__file__).parent / "quickstart" / "quickstart.py"


def images_folder(root: Path) -> None:
    """The quickstart's Images/ layout, with aerial tiles standing in for its trees."""
    tiles = aerial_images(per_tag=10)
    for folder, prefix, tag in (("Hemlock", "hemlock", "Barren"), ("Japanese_Cherry", "japanese_cherry", "Developed")):
        (root / "Images" / folder).mkdir(parents=True)
        for number, tile in enumerate(tiles[tag][:10], start=1):
            shutil.copy(tile, root / "Images" / folder / f"{prefix}_{number}.jpg")
    (root / "Images" / "Test").mkdir()
    shutil.copy(tiles["Developed"][0], root / "Images" / "Test" / "test_image.jpg")


def test_the_official_quickstart_runs_unchanged(portal, tmp_path: Path) -> None:
    shutil.copy(QUICKSTART, tmp_path / "quickstart.py")
    images_folder(tmp_path)
    env = {
        **os.environ,
        # As the portal page shows it: with a trailing slash, so the SDK asks for //customvision/...
        "VISION_TRAINING_ENDPOINT": portal.url + "/",
        "VISION_TRAINING_KEY": TRAINING_KEY,
        "VISION_PREDICTION_KEY": PREDICTION_KEY,
        "VISION_PREDICTION_RESOURCE_ID": "/subscriptions/0/resourceGroups/edge/providers/Microsoft.CognitiveServices",
    }
    run = subprocess.run([PYTHON, "quickstart.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Done!" in run.stdout
    results = [line.strip() for line in run.stdout.splitlines() if line.startswith("\t")]
    assert results[0].startswith("Japanese Cherry: "), run.stdout
    assert float(results[0].split(": ")[1].rstrip("%")) > 50
