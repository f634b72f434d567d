"""Icons as data: 8x8 pixel art, a tag-to-icon alias list, and an unknown tag's initial as the fallback.

The bundled `icons.json`, `aliases.json` and `font.json` sit beside this file. A user's ICONS_FILE (same format
as icons.json, optionally with an `aliases` object) and ALIASES_FILE (same format as aliases.json) are merged
over them: a user icon replaces a bundled one of the same name, a user alias moves a tag to another icon.
"""

from __future__ import annotations

import json
import re
import unicodedata
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgevision.errors import EdgeVisionError

HERE = Path(__file__).resolve().parent
BUNDLED_ICONS = HERE / "icons.json"
BUNDLED_ALIASES = HERE / "aliases.json"
BUNDLED_FONT = HERE / "font.json"
SIZE = 8
OFF = "."
# "n02085620 Chihuahua" (WordNet id first) as some ImageNet label files write it.
WORDNET_ID = re.compile(r"^n\d{8}\s+")


class IconFileError(EdgeVisionError):
    """An icons, aliases or font file is unreadable or malformed; the message names the file and the entry."""


def blank() -> np.ndarray:
    """An 8x8 RGB frame with every LED off."""
    return np.zeros((SIZE, SIZE, 3), dtype=np.uint8)


def normalize(tag: str) -> str:
    """The form tags are compared in: case-folded, accents kept, '_' and '-' as spaces, spaces collapsed."""
    text = WORDNET_ID.sub("", unicodedata.normalize("NFKC", tag).strip())
    return " ".join(re.sub(r"[_\-]+", " ", text).casefold().split())


def parse_colour(value: Any, where: str) -> tuple[int, int, int]:
    """'#RRGGBB' (or [r, g, b]) as a tuple of 0..255 integers."""
    if isinstance(value, str) and re.fullmatch(r"#[0-9a-fA-F]{6}", value.strip()):
        text = value.strip()
        return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)
    if isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in value):
        return value[0], value[1], value[2]
    raise IconFileError(f"{where}: colour must be '#RRGGBB' or [r, g, b] with 0..255 values (got {value!r})")


def parse_picture(data: Any, where: str) -> np.ndarray:
    """One `{"palette": {...}, "rows": [8 strings of 8 characters]}` entry as an 8x8 RGB frame."""
    if not isinstance(data, Mapping):
        raise IconFileError(f"{where}: must be an object with `palette` and `rows`")
    rows, palette = data.get("rows"), data.get("palette", {})
    if not isinstance(rows, list) or len(rows) != SIZE or not all(isinstance(r, str) and len(r) == SIZE for r in rows):
        raise IconFileError(f"{where}: `rows` must be 8 strings of 8 characters ('.' = off)")
    if not isinstance(palette, Mapping):
        raise IconFileError(f"{where}: `palette` must map one character to a colour")
    colours = {}
    for key, value in palette.items():
        if len(key) != 1 or key == OFF:
            raise IconFileError(f"{where}: palette key {key!r} must be one character other than '.'")
        colours[key] = parse_colour(value, f"{where}: palette {key!r}")
    frame = blank()
    for y, row in enumerate(rows):
        for x, char in enumerate(row):
            if char == OFF:
                continue
            if char not in colours:
                raise IconFileError(f"{where}: row {y} uses {char!r}, which is not in the palette")
            frame[y, x] = colours[char]
    return frame


def read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IconFileError(f"{what} {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IconFileError(f"{what} {path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise IconFileError(f"{what} {path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise IconFileError(f"{what} {path}: must hold a JSON object")
    return data


class Font:
    """Fixed-width glyphs ('#' = lit) for the unknown-tag fallback, centred on the matrix."""

    def __init__(self, glyphs: Mapping[str, list[str]], width: int, height: int) -> None:
        self.glyphs = dict(glyphs)
        self.width, self.height = width, height

    @classmethod
    def load(cls, path: Path = BUNDLED_FONT) -> Font:
        data = read_json(path, "font file")
        return cls(data["glyphs"], int(data["width"]), int(data["height"]))

    def draw(self, char: str, colour: tuple[int, int, int]) -> np.ndarray:
        rows = self.glyphs.get(char) or self.glyphs["?"]
        frame = blank()
        top, left = (SIZE - self.height + 1) // 2, (SIZE - self.width) // 2
        for y, row in enumerate(rows):
            for x, cell in enumerate(row):
                if cell == "#":
                    frame[top + y, left + x] = colour
        return frame


def initial_of(tag: str) -> str:
    """The tag's first letter or digit, accents removed ('Élan' -> 'E'); '?' when it has none."""
    plain = unicodedata.normalize("NFKD", tag)
    for char in plain:
        if char.isascii() and char.isalnum():
            return char.upper()
    return "?"


@dataclass(frozen=True)
class Picture:
    """What a tag looks like: an icon, or its initial when no icon matches."""

    kind: str  # "icon" | "initial"
    name: str  # the icon's name, or the initial itself
    frame: np.ndarray


class IconSet:
    """Icons by name, aliases (normalized tag -> icon name), the idle pattern and the fallback colours."""

    def __init__(
        self,
        icons: Mapping[str, np.ndarray],
        aliases: Mapping[str, str],
        idle: np.ndarray,
        fallback_colours: list[tuple[int, int, int]],
        font: Font,
    ) -> None:
        self.icons = {normalize(name): frame for name, frame in icons.items()}
        self.aliases = dict(aliases)
        self.idle = idle
        self.fallback_colours = fallback_colours
        self.font = font

    @classmethod
    def load(cls, icons_file: Path | None = None, aliases_file: Path | None = None) -> IconSet:
        """The bundled icons and aliases, with the user's files merged over them."""
        bundled = read_json(BUNDLED_ICONS, "icons file")
        icons, idle, colours = _icons_from(bundled, BUNDLED_ICONS)
        alias_sources: list[tuple[Path, dict[str, Any]]] = [(BUNDLED_ALIASES, read_json(BUNDLED_ALIASES, "aliases"))]
        if icons_file is not None:
            user = read_json(icons_file, "ICONS_FILE")
            user_icons, user_idle, user_colours = _icons_from(user, icons_file)
            icons.update(user_icons)
            idle = user_idle if user_idle is not None else idle
            colours = user_colours or colours
            if "aliases" in user:
                alias_sources.append((icons_file, user["aliases"]))
        if aliases_file is not None:
            alias_sources.append((aliases_file, read_json(aliases_file, "ALIASES_FILE")))
        known = {normalize(name) for name in icons}
        aliases: dict[str, str] = {}
        for source, table in alias_sources:
            aliases.update(_aliases_from(table, source, known))
        return cls(icons, aliases, idle if idle is not None else blank(), colours, Font.load())

    def icon_for(self, tag: str) -> str | None:
        """The icon a tag shows: by alias, then icon name, then each part of a comma list, then singular."""
        key = normalize(tag)
        candidates = [key, *(part.strip() for part in key.split(",") if part.strip())]
        for candidate in candidates:
            for form in (candidate, *_singulars(candidate)):
                if form in self.aliases:  # first, so a user's alias can even move an icon's own name
                    return self.aliases[form]
                if form in self.icons:
                    return form
        return None

    def picture(self, tag: str) -> Picture:
        icon = self.icon_for(tag)
        if icon is not None:
            return Picture("icon", icon, self.icons[icon].copy())
        char = initial_of(tag)
        return Picture("initial", char, self.font.draw(char, self.colour_for(tag)))

    def colour_for(self, tag: str) -> tuple[int, int, int]:
        """A stable colour per tag, so two unknown tags with one initial still look different."""
        return self.fallback_colours[zlib.crc32(normalize(tag).encode("utf-8")) % len(self.fallback_colours)]


def _icons_from(
    data: Mapping[str, Any], source: Path
) -> tuple[dict[str, np.ndarray], np.ndarray | None, list[tuple[int, int, int]]]:
    raw_icons = data.get("icons", {})
    if not isinstance(raw_icons, Mapping):
        raise IconFileError(f"{source}: `icons` must be an object of name -> icon")
    icons = {}
    for name, entry in raw_icons.items():
        if not normalize(name):
            raise IconFileError(f"{source}: an icon needs a non-empty name")
        icons[name] = parse_picture(entry, f"{source}: icon {name!r}")
    idle = parse_picture(data["idle"], f"{source}: idle") if "idle" in data else None
    raw_colours = data.get("fallback_colours", [])
    if not isinstance(raw_colours, list):
        raise IconFileError(f"{source}: `fallback_colours` must be a list of colours")
    colours = [parse_colour(c, f"{source}: fallback_colours[{i}]") for i, c in enumerate(raw_colours)]
    return icons, idle, colours


def _aliases_from(table: Any, source: Path, known: set[str]) -> dict[str, str]:
    if not isinstance(table, Mapping):
        raise IconFileError(f"{source}: aliases must be an object of icon name -> list of tag names")
    aliases = {}
    for icon, names in table.items():
        if icon.startswith("_"):
            continue  # comments
        target = normalize(icon)
        if target not in known:
            raise IconFileError(f"{source}: aliases for {icon!r}, which is not an icon (known: {sorted(known)})")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise IconFileError(f"{source}: aliases for {icon!r} must be a list of tag names")
        aliases.update({normalize(name): target for name in names if normalize(name)})
    return aliases


def _singulars(word: str) -> list[str]:
    """'deers' -> 'deer', 'buses' -> 'bus': enough for tags people type, not a full stemmer."""
    forms = []
    if word.endswith("es") and len(word) > 3:
        forms.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss") and len(word) > 2:
        forms.append(word[:-1])
    return forms
