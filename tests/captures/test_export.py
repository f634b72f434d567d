"""`edgevision captures export --format camtrap-dp`: packages of real capture folders that validate against the
shared Camtrap DP 1.0.2 profile and schemas, offline; bad sidecars skipped and listed; one-line errors."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from edgevision.captures.camtrap_dp import SCHEMAS_DIR
from edgevision.captures.validate import check_package
from tests.captures.conftest import MODEL, PLAN, TAG_FRAMES, Park, run_cli, tags_of

SCHEMA_FILES = (
    "camtrap-dp-profile.json",
    "deployments-table-schema.json",
    "media-table-schema.json",
    "observations-table-schema.json",
)


def table(package: Path, name: str) -> list[dict[str, str]]:
    with open(package / f"{name}.csv", encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def export(source: Path, out: Path, mapping: Path, *extra: str) -> str:
    result = run_cli("captures", "export", source, "--format", "camtrap-dp", "--out", out, "--mapping", mapping, *extra)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout + result.stderr


def test_a_real_capture_run_exports_a_package_valid_against_the_shared_schemas(
    real_captures: Path, mapping_file: Path, camtrap_dir: Path, tmp_path: Path
) -> None:
    package = tmp_path / "package"
    export(real_captures, package, mapping_file)
    assert check_package(package, camtrap_dir) == []
    sidecars = {p.stem: json.loads(p.read_text()) for p in real_captures.rglob("*.json")}
    media = table(package, "media")
    assert sorted(Path(row["filePath"]).stem for row in media) == sorted(sidecars)
    for row in media:  # each JPEG copied as it was, referenced by a relative path
        assert (package / row["filePath"]).read_bytes() == next(real_captures.rglob(row["fileName"])).read_bytes()
    observations = table(package, "observations")
    for row in observations:
        sidecar = sidecars[row["mediaID"].removeprefix("captures_")]
        tag = row["observationTags"].removeprefix("tag:")
        assert row["classificationMethod"] == "machine"
        assert row["classifiedBy"] == sidecar["modelId"]
        probability = next(p["probability"] for p in sidecar["predictions"] if p["tagName"] == tag)
        assert float(row["classificationProbability"]) == pytest.approx(probability, abs=1e-6)
    names = {row["scientificName"] for row in observations}
    assert names == {"Equus quagga", "Loxodonta africana"}
    [deployment] = table(package, "deployments")
    assert (deployment["deploymentID"], deployment["latitude"]) == ("captures", "-2.333")


def test_a_park_of_two_devices_exports_both_deployments_and_lists_the_bad_sidecars(
    park: Park, mapping_file: Path, camtrap_dir: Path, tmp_path: Path
) -> None:
    package = tmp_path / "package"
    output = export(park.root, package, mapping_file)
    assert check_package(package, camtrap_dir) == []
    for path in park.bad:
        assert path in output, output  # each bad file listed with its reason
    assert "exported 11 media" in output
    deployments = {row["deploymentID"]: row for row in table(package, "deployments")}
    assert set(deployments) == {"north", "S1"}
    assert deployments["north"]["featureType"] == "trailHiking"
    assert deployments["north"]["deploymentStart"] == "2026-11-30T06:00:00Z"  # first frame, 06:00:00.250
    assert deployments["north"]["deploymentEnd"] == "2026-12-01T06:10:11Z"  # last frame, rounded up
    observations = table(package, "observations")
    per_tag: dict[str, int] = {}
    for row in observations:
        tag = row["observationTags"].removeprefix("tag:")
        per_tag[tag] = per_tag.get(tag, 0) + 1
        assert row["classifiedBy"] == MODEL
    assert per_tag == TAG_FRAMES
    kinds = {(row["observationTags"], row["observationType"], row["scientificName"]) for row in observations}
    assert kinds == {
        ("tag:deer", "animal", "Cervidae"),
        ("tag:dog", "animal", "Canis lupus familiaris"),
        ("tag:person", "human", "Homo sapiens"),
        ("tag:badger", "unclassified", ""),  # a tag the mapping does not know
    }
    descriptor = json.loads((package / "datapackage.json").read_text())
    assert descriptor["title"] == "Park trail cameras"
    assert descriptor["spatial"]["type"] == "MultiPoint"
    assert (descriptor["temporal"]["start"], descriptor["temporal"]["end"]) == ("2026-11-30", "2026-12-01")
    taxa = {taxon["scientificName"]: taxon for taxon in descriptor["taxonomic"]}
    assert taxa["Cervidae"] == {"scientificName": "Cervidae", "taxonRank": "family", "vernacularNames": {"eng": "deer"}}


def test_the_frames_tags_follow_the_sidecars(park: Park, mapping_file: Path, tmp_path: Path) -> None:
    package = tmp_path / "package"
    export(park.root, package, mapping_file)
    expected = {}
    for path in park.root.rglob("*.jpg"):
        if path.relative_to(park.root).as_posix() not in park.bad:
            expected[path.stem] = tags_of(json.loads(path.with_suffix(".json").read_text()))
    found: dict[str, set[str]] = {}
    for row in table(package, "observations"):
        stem = row["mediaID"].split("_", 1)[1]
        found.setdefault(stem, set()).add(row["observationTags"].removeprefix("tag:"))
    assert found == expected and len(found) == len(PLAN)


def test_deployment_selects_and_media_base_url_references_blobs(
    park: Park, mapping_file: Path, camtrap_dir: Path, tmp_path: Path
) -> None:
    package = tmp_path / "package"
    base = "https://parkstore.blob.core.windows.net/captures"
    export(park.root, package, mapping_file, "--deployment", "S1", "--media-base-url", base)
    assert check_package(package, camtrap_dir) == []
    media = table(package, "media")
    assert {row["deploymentID"] for row in media} == {"S1"} and len(media) == 3
    assert all(row["filePath"].startswith(f"{base}/south/2026-12-01/") for row in media)
    assert not (package / "media").exists()


def test_the_bundled_schemas_are_the_shared_ones(camtrap_dir: Path) -> None:
    for name in (*SCHEMA_FILES, "LICENSE"):
        assert (SCHEMAS_DIR / name).read_bytes() == (camtrap_dir / name).read_bytes(), name


def test_the_validator_accepts_the_official_example_and_rejects_broken_packages(
    park: Park, mapping_file: Path, camtrap_dir: Path, tmp_path: Path
) -> None:
    assert check_package(camtrap_dir / "example", camtrap_dir) == []
    package = tmp_path / "package"
    export(park.root, package, mapping_file)
    broken = tmp_path / "broken"
    shutil.copytree(package, broken)
    media = (broken / "media.csv").read_text().replace(",north,", ",nowhere,", 1)
    (broken / "media.csv").write_text(media)
    descriptor = json.loads((broken / "datapackage.json").read_text())
    descriptor["project"]["samplingDesign"] = "random"
    del descriptor["temporal"]
    (broken / "datapackage.json").write_text(json.dumps(descriptor))
    problems = "\n".join(check_package(broken, camtrap_dir))
    assert "foreign key" in problems and "nowhere" in problems
    assert "samplingDesign" in problems and "'temporal' is a required property" in problems
    result = run_cli("captures", "validate", broken, "--schemas", camtrap_dir)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing folder", "is not a folder"),
        ("no place", "has no place"),
        ("bad mapping", "is not JSON"),
        ("mapping typo", "tags.deer.scientificname: Extra inputs are not permitted"),
        ("unknown deployment", "unknown deployment west"),
        ("out not empty", "is not empty"),
    ],
)
def test_bad_input_is_a_one_line_error(park: Park, mapping_file: Path, tmp_path: Path, case: str, needle: str) -> None:
    source, mapping, out, extra = park.root, mapping_file, tmp_path / "out", []
    if case == "missing folder":
        source = tmp_path / "nowhere"
    elif case == "no place":
        mapping = tmp_path / "m.json"
        mapping.write_text(json.dumps({"deployments": {"north": {"latitude": 1, "longitude": 2}}}))
    elif case == "bad mapping":
        mapping = tmp_path / "m.json"
        mapping.write_text('{"tags": ')
    elif case == "mapping typo":
        mapping = tmp_path / "m.json"
        mapping.write_text(json.dumps({"tags": {"deer": {"scientificname": "Cervidae"}}}))
    elif case == "unknown deployment":
        extra = ["--deployment", "west"]
    elif case == "out not empty":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    result = run_cli("captures", "export", source, "--out", out, "--mapping", mapping, *extra)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("edgevision captures: error:") and needle in line, result.stderr
    if case == "out not empty":
        assert (out / "notes.txt").read_text() == "mine"
