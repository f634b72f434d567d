"""Training settings: command-line options, or EDGEVISION_TRAIN_* environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgevision.config import Settings


def _env(name: str) -> dict:
    return {"env": f"EDGEVISION_TRAIN_{name}"}


class TrainSettings(Settings):
    resize: Literal["stretch", "crop", "imagenet"] = Field(
        "stretch",
        description="How pictures become 224 x 224 network input (written into the exported model): 'stretch'"
        " keeps the whole picture, 'crop' scales the shorter side to 224 and keeps the centre square,"
        " 'imagenet' is the backbone's own shorter-side-256 / centre-224.",
        json_schema_extra=_env("RESIZE"),
    )
    augment: Literal["none", "flip", "dihedral"] = Field(
        "flip",
        description="Extra training views of every image: 'flip' adds the mirror image (safe for photos);"
        " 'dihedral' adds every 90-degree rotation and its mirror (top-down imagery: aerial, microscopy).",
        json_schema_extra=_env("AUGMENT"),
    )
    l2: float = Field(
        1e-3, gt=0, description="L2 penalty on the head's weights (larger = smoother).", json_schema_extra=_env("L2")
    )
    balance: bool = Field(
        True,
        description="Weight every tag equally in the loss, however many images it has.",
        json_schema_extra=_env("BALANCE"),
    )
    folds: int = Field(
        5,
        ge=2,
        le=20,
        description="Stratified k-fold evaluation: every image is scored by a head that never saw it.",
        json_schema_extra=_env("FOLDS"),
    )
    threshold: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Probability threshold for precision and recall.",
        json_schema_extra=_env("THRESHOLD"),
    )
    seed: int = Field(0, description="Seed of the fold assignment.", json_schema_extra=_env("SEED"))
    min_images: int = Field(5, ge=2, description="Fewest images a tag may have.", json_schema_extra=_env("MIN_IMAGES"))
    negative_tag: str = Field(
        "Negative",
        min_length=1,
        description="Multi-label CSV: the tag that marks an image with none of the tags.",
        json_schema_extra=_env("NEGATIVE_TAG"),
    )
    cache: str = Field(
        "",
        description="Feature cache folder (default: <project>/cache/features). Projects training on the same"
        " pictures may share one; entries are keyed by image content, backbone and pre-processing.",
        json_schema_extra=_env("CACHE"),
    )
    threads: int = Field(
        0,
        ge=0,
        description="onnxruntime threads for feature extraction (0 = all cores).",
        json_schema_extra=_env("THREADS"),
    )
    max_iter: int = Field(
        300, ge=10, description="Most L-BFGS iterations per head fit.", json_schema_extra=_env("MAX_ITER")
    )
