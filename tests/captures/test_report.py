"""`edgevision captures report`: report.html with its PNGs and CSVs, whose counts match the sidecars, for a
capture folder of two devices, for a real capture run, for the official Camtrap DP example, and for a package
this tool exported (same counts as the folder it came from)."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from tests.captures.conftest import COOCCURRENCE, EVENTS_30S, EVENTS_600S, PLAN, TAG_FRAMES, Park, run_cli, tags_of

PLOTS = ("frames_per_hour.png", "frames_per_day.png", "devices.png", "cooccurrence.png", "interactions_per_hour.png")


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def report(source: Path, out: Path, *extra: str) -> str:
    result = run_cli("captures", "report", source, "--out", out, *extra)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout + result.stderr


def check_page(out: Path, plots: tuple[str, ...] = PLOTS) -> str:
    """The PNGs are real images, and report.html embeds them all and loads nothing from elsewhere."""
    for name in plots:
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.size[0] > 300, name
    page = (out / "report.html").read_text(encoding="utf-8")
    embedded = re.findall(r"src='data:image/png;base64,", page)
    assert len(embedded) == len(list(out.glob("*.png")))
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", page)
    return page


def sidecar_counts(root: Path, bad: dict[str, str], device: str = "") -> Counter[tuple[str, str, str, int]]:
    """(device, tag, date, hour) -> frames, straight from the sidecar files (device: `device`, else the first
    folder below `root`)."""
    counts: Counter[tuple[str, str, str, int]] = Counter()
    for jpeg in root.rglob("*.jpg"):
        relative = jpeg.relative_to(root).as_posix()
        if relative in bad:
            continue
        sidecar = json.loads(jpeg.with_suffix(".json").read_text())
        day, hour = sidecar["capturedAt"][:10], int(sidecar["capturedAt"][11:13])
        for tag in tags_of(sidecar):
            counts[(device or relative.split("/")[0], tag, day, hour)] += 1
    return counts


def report_counts(out: Path) -> Counter[tuple[str, str, str, int]]:
    return Counter(
        {(r["device"], r["tag"], r["date"], int(r["hour"])): int(r["frames"]) for r in rows(out / "counts.csv")}
    )


def test_the_report_of_two_devices_counts_what_the_sidecars_say(park: Park, tmp_path: Path) -> None:
    out = tmp_path / "report"
    output = report(park.root, out)
    page = check_page(out, (*PLOTS, "frames_per_hour_by_device.png"))
    counts = report_counts(out)
    assert counts == sidecar_counts(park.root, park.bad)
    per_tag: Counter[str] = Counter()
    for (_, tag, _, _), n in counts.items():
        per_tag[tag] += n
    assert per_tag == TAG_FRAMES
    pairs = {(r["tag_a"], r["tag_b"]): int(r["frames"]) for r in rows(out / "cooccurrence.csv")}
    assert pairs == COOCCURRENCE
    events = rows(out / "interactions.csv")
    assert len(events) == EVENTS_30S
    assert [(e["device"], e["start"][:19], e["partners"]) for e in events] == [
        ("north", "2026-11-30T06:00:00", "person"),
        ("north", "2026-11-30T18:30:00", "dog"),
        ("north", "2026-12-01T06:10:00", "dog"),
    ]
    assert {e["closest_seconds"] for e in events} == {"0.0", "10.0"}
    assert rows(out / "top_windows.csv")[0] == {"device": "north", "date": "2026-11-30", "hour": "6", "events": "1"}
    skipped = {r["path"]: r["reason"] for r in rows(out / "skipped.csv")}
    assert set(skipped) == set(park.bad)
    assert "no sidecar" in skipped["north/2026-11-30/20261130T100000_000000Z_000100_deer.jpg"]
    assert "another version" in skipped["north/2026-11-30/20261130T100002_000000Z_000102_deer.jpg"]
    for path in park.bad:
        assert path in output and path in page
    assert f"report of {len(PLAN)} frames, {EVENTS_30S} interaction events (4 files skipped)" in output


def test_the_window_and_the_time_zone_are_options(park: Park, tmp_path: Path) -> None:
    out = tmp_path / "report"
    report(park.root, out, "--window-seconds", "600", "--timezone", "Europe/Zurich")
    assert len(rows(out / "interactions.csv")) == EVENTS_600S  # the dog at 09:00 and the deer at 09:05 too
    hours = Counter()
    for (_, _, _, hour), n in report_counts(out).items():
        hours[hour] += n
    utc = Counter()
    for (_, _, _, hour), n in sidecar_counts(park.root, park.bad).items():
        utc[(hour + 1) % 24] += n  # Zurich is UTC+1 in November and December
    assert hours == utc


def test_a_real_capture_run_reports_its_kept_frames(real_captures: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    output = report(real_captures, out, "--animal", "zebra", "--with", "African elephant", "--window-seconds", "5")
    check_page(out)
    assert report_counts(out) == sidecar_counts(real_captures, {}, device="captures")
    assert "(0 files skipped)" in output
    assert rows(out / "interactions.csv")  # zebras then elephants then zebras, within a few seconds of video


def test_the_official_example_package_is_reported(camtrap_dir: Path, tmp_path: Path) -> None:
    example = camtrap_dir / "example"
    out = tmp_path / "report"
    output = report(example, out, "--animal", "Anas platyrhynchos", "--with", "Ardea cinerea", "--with", "person")
    check_page(out, (*PLOTS, "frames_per_hour_by_device.png"))
    media = rows(example / "media.csv")
    labels: dict[str, set[str]] = {}
    names = {"Homo sapiens": "person", "Vulpes vulpes": "fox"}  # the bundled default mapping's tags
    kinds = {"blank": "empty"}
    for row in rows(example / "observations.csv"):
        if row["mediaID"]:
            label = names.get(row["scientificName"]) or row["scientificName"] or kinds.get(row["observationType"])
            labels.setdefault(row["mediaID"], set()).add(label or row["observationType"])
    assert len(labels) == len(media)  # every example media has media-level observations
    expected: Counter[str] = Counter(tag for tags in labels.values() for tag in tags)
    found: Counter[str] = Counter()
    for r in rows(out / "counts.csv"):
        found[r["tag"]] += int(r["frames"])
    assert found == expected and found["person"] > 0
    assert f"report of {len(media)} frames" in output
    together = sum(1 for tags in labels.values() if {"Anas platyrhynchos", "Ardea cinerea"} <= tags)
    pairs = {(r["tag_a"], r["tag_b"]): int(r["frames"]) for r in rows(out / "cooccurrence.csv")}
    assert pairs[("Anas platyrhynchos", "Ardea cinerea")] == together > 0
    events = rows(out / "interactions.csv")
    assert events and all(e["partners"] in {"Ardea cinerea", "person", "Ardea cinerea person"} for e in events)
    assert {e["device"] for e in events} <= {r["deploymentID"] for r in rows(example / "deployments.csv")}


def test_an_exported_package_reports_the_same_counts_as_its_folder(
    park: Park, mapping_file: Path, tmp_path: Path
) -> None:
    package = tmp_path / "package"
    assert run_cli("captures", "export", park.root, "--out", package, "--mapping", mapping_file).returncode == 0
    from_folder, from_package = tmp_path / "folder-report", tmp_path / "package-report"
    report(park.root, from_folder)
    report(package, from_package, "--mapping", mapping_file)
    renamed = {"S1": "south"}  # the package names the south camera by its deploymentID
    package_counts = Counter(
        {
            (renamed.get(device, device), tag, day, hour): n
            for (device, tag, day, hour), n in report_counts(from_package).items()
        }
    )
    assert package_counts == report_counts(from_folder)
    assert len(rows(from_package / "interactions.csv")) == EVENTS_30S


def test_a_folder_of_only_bad_sidecars_still_gets_a_report(tmp_path: Path) -> None:
    folder = tmp_path / "captures" / "2026-12-01"
    folder.mkdir(parents=True)
    (folder / "20261201T060000_000000Z_000001_deer.jpg").write_bytes(b"\xff\xd8 not much of a JPEG")
    (folder / "20261201T060000_000000Z_000001_deer.json").write_text('{"capturedAt": "2026-12-01T06:00')
    out = tmp_path / "report"
    output = report(tmp_path / "captures", out)
    check_page(out)
    assert "report of 0 frames, 0 interaction events (1 files skipped)" in output
    assert "not JSON" in rows(out / "skipped.csv")[0]["reason"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["{missing}"], "is not a folder"),
        (["{park}", "--timezone", "Mars/Olympus"], "unknown time zone"),
        (["{park}", "--window-seconds", "0"], "must be more than 0"),
        (["{package}"], "has no media resource"),
    ],
)
def test_bad_report_input_is_a_one_line_error(park: Park, tmp_path: Path, args: list[str], needle: str) -> None:
    package = tmp_path / "package"
    package.mkdir()
    (package / "datapackage.json").write_text(json.dumps({"resources": [{"name": "observations", "path": "o.csv"}]}))
    values = {"missing": tmp_path / "nowhere", "park": park.root, "package": package}
    result = run_cli("captures", "report", *(a.format(**values) for a in args), "--out", tmp_path / "out")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()[-1:]
    assert needle in line and "Traceback" not in result.stderr, result.stderr
