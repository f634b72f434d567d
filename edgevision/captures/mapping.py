"""The user's mapping file: what each tag means in Camtrap DP, where each camera stands, the package's metadata.

A JSON file (docs/captures.md has a full example):

    {"tags": {"deer": {"scientificName": "Cervidae", "taxonRank": "family", "vernacularName": "deer"},
              "dog": "Canis lupus familiaris",
              "person": {"observationType": "human", "scientificName": "Homo sapiens"}},
     "deployments": {"park-north": {"latitude": 46.52, "longitude": 6.63, "locationName": "north gate"}},
     "package": {"title": "Park north trail", "contributors": [{"title": "A. Ranger", "role": "contact"}]}}

A tag given as a string is an animal's scientific name. Tags are matched case-insensitively. Without a file the
bundled `default-mapping.json` is used (deer, person, dog, empty...), which has no deployments.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgevision.captures.errors import CapturesError

DEFAULT_MAPPING = Path(__file__).resolve().parent / "default-mapping.json"

ObservationType = Literal["animal", "human", "vehicle", "blank", "unknown", "unclassified"]
TaxonRank = Literal["kingdom", "phylum", "class", "order", "family", "genus", "species", "subspecies"]
FeatureType = Literal[
    "roadPaved",
    "roadDirt",
    "trailHiking",
    "trailGame",
    "roadUnderpass",
    "roadOverpass",
    "roadBridge",
    "culvert",
    "burrow",
    "nestSite",
    "carcass",
    "waterSource",
    "fruitingTree",
]


class Strict(BaseModel):
    # A typo in a hand-written file must be an error, not a silently ignored key.
    model_config = ConfigDict(extra="forbid")


class Taxon(Strict):
    """What one tag stands for in `observations.csv`."""

    observationType: ObservationType = Field("animal", description="Camtrap DP observation type.")
    scientificName: str | None = Field(None, description="Scientific name (animals; `Homo sapiens` for people).")
    taxonRank: TaxonRank | None = Field(None, description="Rank of the scientific name.")
    vernacularName: str | None = Field(None, description="English common name, for the package's taxonomic list.")


class Deployment(Strict):
    """One camera (a device folder of the captures) as a Camtrap DP deployment."""

    deploymentID: str | None = Field(None, description="ID in the package (default: the device name).")
    latitude: float = Field(ge=-90, le=90, description="WGS84 decimal degrees.")
    longitude: float = Field(ge=-180, le=180, description="WGS84 decimal degrees.")
    coordinateUncertainty: int | None = Field(None, ge=1, description="Metres.")
    locationID: str | None = None
    locationName: str | None = None
    deploymentStart: datetime | None = Field(None, description="Default: the first kept frame.")
    deploymentEnd: datetime | None = Field(None, description="Default: the last kept frame.")
    setupBy: str | None = None
    cameraModel: str | None = None
    cameraHeight: float | None = Field(None, ge=0, description="Metres.")
    cameraTilt: int | None = Field(None, ge=-90, le=90)
    cameraHeading: int | None = Field(None, ge=0, le=360)
    featureType: FeatureType | None = None
    habitat: str | None = None
    deploymentGroups: str | None = None
    deploymentTags: str | None = None
    deploymentComments: str | None = None


class Mapping(Strict):
    tags: dict[str, Taxon] = Field(default_factory=dict, description="Tag -> what it means.")
    deployments: dict[str, Deployment] = Field(default_factory=dict, description="Device name -> where it stands.")
    package: dict[str, Any] = Field(
        default_factory=dict, description="Merged into datapackage.json (title, contributors, project, licenses...)."
    )

    @field_validator("tags", mode="before")
    @classmethod
    def _names_as_taxa(cls, tags: Any) -> Any:
        if isinstance(tags, dict):
            return {tag: {"scientificName": value} if isinstance(value, str) else value for tag, value in tags.items()}
        return tags

    def taxon(self, tag: str) -> Taxon | None:
        """What `tag` stands for, matched case-insensitively; None when the file does not say."""
        return self._by_lower().get(tag.strip().lower())

    def label(self, observation_type: str, scientific_name: str) -> str:
        """A Camtrap DP observation as a tag: the mapped tag of its scientific name (or of its type, for people,
        vehicles and blanks), else the scientific name itself, else its observation type."""
        for tag, taxon in self.tags.items():
            if scientific_name and taxon.scientificName == scientific_name:
                return tag
        if not scientific_name and observation_type != "animal":
            for tag, taxon in self.tags.items():
                if taxon.observationType == observation_type:
                    return tag
        return scientific_name or observation_type

    def deployment(self, device: str) -> Deployment | None:
        return self.deployments.get(device)

    def _by_lower(self) -> dict[str, Taxon]:
        return {tag.strip().lower(): taxon for tag, taxon in self.tags.items()}


def load_mapping(path: str | Path | None) -> Mapping:
    """The mapping file at `path` (the bundled default when None); CapturesError on one line if it is bad."""
    file = Path(path) if path else DEFAULT_MAPPING
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CapturesError(f"mapping file {file} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CapturesError(f"cannot read mapping file {file}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise CapturesError(f"mapping file {file} is not JSON: {exc}") from None
    try:
        return Mapping.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise CapturesError(f"mapping file {file}: {where}: {first['msg']}") from None
