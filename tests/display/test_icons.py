"""Icons and aliases as data: the bundled model's ImageNet names reach the right icons, tags are matched the way
people and label files write them, and a user's files extend or override the bundled ones."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgevision.display.icons import BUNDLED_ALIASES, IconFileError, IconSet, initial_of
from edgevision.display.settings import DisplaySettings
from edgevision.models import DEFAULT_MODEL_DIR

REQUIRED = {"deer", "dog", "cat", "bird", "person", "horse", "zebra", "elephant", "vehicle", "nothing"}


@pytest.fixture(scope="module")
def labels() -> list[str]:
    return (DEFAULT_MODEL_DIR / "labels.txt").read_text().splitlines()


@pytest.fixture(scope="module")
def icons() -> IconSet:
    return IconSet.load()


def test_the_required_icons_exist_and_differ(icons, icon_pixels) -> None:
    assert set(icons.icons) >= REQUIRED
    for name in REQUIRED:
        assert np.array_equal(icons.icons[name], icon_pixels(name))
        assert icons.icons[name].any()
    frames = [icons.icons[name].tobytes() for name in REQUIRED]
    assert len(set(frames)) == len(frames)


@pytest.mark.parametrize(
    ("first", "last", "icon"),
    [(151, 268, "dog"), (281, 285, "cat"), (7, 24, "bird"), (80, 100, "bird"), (127, 146, "bird")],
)
def test_every_imagenet_class_of_a_family_maps_to_its_icon(first, last, icon, labels, icons) -> None:
    for index in range(first, last + 1):
        assert icons.icon_for(labels[index]) == icon, (index, labels[index])


@pytest.mark.parametrize(
    ("tag", "icon"),
    [
        ("hartebeest", "deer"),  # ImageNet has no deer: its antelopes stand in
        ("impala", "deer"),
        ("gazelle", "deer"),
        ("scuba diver", "person"),  # ... and no person: the three classes that are people
        ("groom", "person"),
        ("ballplayer", "person"),
        ("sorrel", "horse"),
        ("African elephant", "elephant"),
        ("tusker", "elephant"),
        ("pickup", "vehicle"),
        ("minivan", "vehicle"),
        ("sports car", "vehicle"),
        ("school bus", "vehicle"),
        ("mountain bike", "vehicle"),
        ("zebra", "zebra"),
    ],
)
def test_imagenet_names_without_an_icon_of_their_own(tag, icon, labels, icons) -> None:
    assert tag in labels
    assert icons.icon_for(tag) == icon


@pytest.mark.parametrize(
    ("tag", "icon"),
    [
        ("Deer", "deer"),  # a custom model's tags, any case and spacing
        ("  DEER ", "deer"),
        ("deers", "deer"),
        ("Person", "person"),
        ("people", "person"),
        ("horses", "horse"),
        ("buses", "vehicle"),
        ("Egyptian_cat", "cat"),  # Keras-style label
        ("n02085620 Chihuahua", "dog"),  # WordNet id first
        ("malamute, malemute, Alaskan malamute", "dog"),  # full synset list
        ("Shih Tzu", "dog"),
        ("Negative", "nothing"),  # Custom Vision's negative tag
    ],
)
def test_tags_are_matched_as_people_and_label_files_write_them(tag, icon, icons) -> None:
    assert icons.icon_for(tag) == icon


@pytest.mark.parametrize("tag", ["hotdog", "African hunting dog", "sea lion", "tiger", "dogsled", "catamaran"])
def test_lookalike_names_stay_unknown(tag, labels, icons) -> None:
    # matching is by whole names, never by a word inside one: a hotdog is food, a tiger no house cat
    assert tag in labels
    assert icons.icon_for(tag) is None


def test_bundled_aliases_are_unambiguous() -> None:
    data = json.loads(BUNDLED_ALIASES.read_text())
    seen: dict[str, str] = {}
    for icon, names in data.items():
        if icon.startswith("_"):
            continue
        for name in names:
            key = name.casefold()
            assert key not in seen, f"{name!r} listed under {seen.get(key)} and {icon}"
            seen[key] = icon
    assert {"hartebeest", "impala", "gazelle", "scuba diver", "groom", "ballplayer"} <= set(seen)


def test_initials() -> None:
    assert initial_of("axolotl") == "A"
    assert initial_of("Élan") == "E"
    assert initial_of("3-toed sloth") == "3"
    assert initial_of("(unknown)") == "U"
    assert initial_of("鹿") == "?"


def test_unknown_tags_get_stable_distinct_colours(icons) -> None:
    assert icons.colour_for("axolotl") == icons.colour_for("Axolotl ")
    colours = {icons.colour_for(tag) for tag in ["axolotl", "armadillo", "aardvark", "anteater", "alpaca", "ant"]}
    assert len(colours) > 1


def test_user_aliases_file_adds_and_moves_names(tmp_path) -> None:
    path = tmp_path / "aliases.json"
    path.write_text(json.dumps({"deer": ["roe", "Cervus elaphus"], "cat": ["malamute"]}))
    settings = DisplaySettings.from_env({"ALIASES_FILE": str(path)})
    icons = IconSet.load(settings.icons_file, settings.aliases_file)
    assert icons.icon_for("Roe") == "deer"
    assert icons.icon_for("cervus_elaphus") == "deer"
    assert icons.icon_for("malamute") == "cat"
    assert icons.icon_for("beagle") == "dog"  # the bundled list still applies


def test_user_icons_file_adds_an_icon_with_its_aliases(tmp_path) -> None:
    rows = ["o......o", "oo....oo", "oooooooo", "owoooowo", "oooooooo", ".ookkoo.", "..oooo..", "...oo..."]
    path = tmp_path / "icons.json"
    path.write_text(
        json.dumps(
            {
                "icons": {"fox": {"palette": {"o": "#FF6600", "w": "#FFFFFF", "k": [0, 0, 0]}, "rows": rows}},
                "aliases": {"fox": ["red fox", "kit fox", "Arctic fox", "grey fox"]},
                "idle": {"palette": {"g": "#00FF00"}, "rows": ["g......."] + ["........"] * 7},
            }
        )
    )
    icons = IconSet.load(icons_file=path)
    picture = icons.picture("red fox")
    assert (picture.kind, picture.name) == ("icon", "fox")
    assert tuple(picture.frame[0, 0]) == (255, 102, 0) and tuple(picture.frame[3, 1]) == (255, 255, 255)
    assert tuple(icons.idle[0, 0]) == (0, 255, 0) and icons.idle.sum() == 255
    assert icons.icon_for("deer") == "deer"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"icons": {"x": {"palette": {}, "rows": ["........"]}}}', "icon 'x'.*8 strings"),
        (json.dumps({"icons": {"x": {"palette": {"a": "red"}, "rows": ["aaaaaaaa"] * 8}}}), "palette 'a'.*colour"),
        (json.dumps({"icons": {"x": {"palette": {}, "rows": ["z......."] + ["........"] * 7}}}), "'z'.*not in"),
        ('{"aliases": {"unicorn": ["narwhal"]}}', "'unicorn', which is not an icon"),
    ],
)
def test_bad_user_files_are_named_errors(tmp_path, content, message) -> None:
    path = tmp_path / "icons.json"
    path.write_text(content)
    with pytest.raises(IconFileError, match=message) as error:
        IconSet.load(icons_file=path)
    assert str(path) in str(error.value)


def test_a_missing_file_is_a_named_error(tmp_path) -> None:
    with pytest.raises(IconFileError, match=r"ALIASES_FILE .*missing\.json: file not found"):
        IconSet.load(aliases_file=tmp_path / "missing.json")
