"""What the report counts, computed from frames alone (no plotting here).

- counts: kept frames per device, tag, local date and hour (a frame counts once for each tag it carries);
- co-occurrence: frames that carry two tags at once (multi-label models: a deer and a person in one frame);
- interaction events: on one device, a run of animal or partner frames with no gap longer than the window,
  holding an animal frame and a partner frame at most `window` seconds apart (a frame with both counts, 0 s);
- top windows: the local clock hours (per device and date) with the most interaction events.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from itertools import combinations

from edgevision.captures.records import Frame


@dataclass(frozen=True)
class CountRow:
    device: str
    tag: str
    date: str  # local YYYY-MM-DD
    hour: int  # local 0..23
    frames: int


@dataclass(frozen=True)
class Event:
    """One interaction: animal and partner frames close together on one device."""

    device: str
    start: datetime
    end: datetime
    animal_frames: int
    partner_frames: int
    partners: tuple[str, ...]
    closest: float  # seconds between the closest animal and partner frames

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class Window:
    device: str
    date: str
    hour: int
    events: int


def counts(frames: Iterable[Frame], zone: tzinfo) -> list[CountRow]:
    tally: Counter[tuple[str, str, str, int]] = Counter()
    for frame in frames:
        local = frame.when.astimezone(zone)
        for tag in frame.tags:
            tally[(frame.device, tag, local.date().isoformat(), local.hour)] += 1
    return [CountRow(*key, frames=n) for key, n in sorted(tally.items())]


def tag_totals(frames: Iterable[Frame]) -> Counter[str]:
    return Counter(tag for frame in frames for tag in frame.tags)


def cooccurrence(frames: Iterable[Frame]) -> Counter[tuple[str, str]]:
    """Frames per unordered pair of tags carried together (pairs sorted by name)."""
    pairs: Counter[tuple[str, str]] = Counter()
    for frame in frames:
        pairs.update(combinations(sorted(frame.tags), 2))
    return pairs


def interactions(
    frames: Sequence[Frame], animals: Iterable[str], partners: Iterable[str], window: float
) -> list[Event]:
    """The interaction events of `frames` (any order), oldest first."""
    animal_tags, partner_tags = _lower(animals), _lower(partners)
    events: list[Event] = []
    by_device: dict[str, list[Frame]] = {}
    for frame in sorted(frames, key=lambda f: f.when):
        tags = _lower(frame.tags)
        if tags & (animal_tags | partner_tags):
            by_device.setdefault(frame.device, []).append(frame)
    for device, relevant in sorted(by_device.items()):
        for run in _runs(relevant, window):
            event = _event(device, run, animal_tags, partner_tags, window)
            if event is not None:
                events.append(event)
    return sorted(events, key=lambda e: (e.start, e.device))


def _runs(frames: list[Frame], window: float) -> list[list[Frame]]:
    runs: list[list[Frame]] = []
    for frame in frames:
        if runs and (frame.when - runs[-1][-1].when).total_seconds() <= window:
            runs[-1].append(frame)
        else:
            runs.append([frame])
    return runs


def _event(device: str, run: list[Frame], animal_tags: set[str], partner_tags: set[str], window: float):
    animal_times = [f.when.timestamp() for f in run if _lower(f.tags) & animal_tags]
    partner_frames = [f for f in run if _lower(f.tags) & partner_tags]
    if not animal_times or not partner_frames:
        return None
    closest = min(_nearest(animal_times, f.when.timestamp()) for f in partner_frames)
    if closest > window:
        return None
    partners = sorted({tag for f in partner_frames for tag in f.tags if tag.lower() in partner_tags})
    return Event(device, run[0].when, run[-1].when, len(animal_times), len(partner_frames), tuple(partners), closest)


def _nearest(sorted_times: list[float], when: float) -> float:
    i = bisect.bisect_left(sorted_times, when)
    around = sorted_times[max(0, i - 1) : i + 1]
    return min(abs(when - t) for t in around)


def top_windows(events: Iterable[Event], zone: tzinfo, limit: int = 10) -> list[Window]:
    tally: Counter[tuple[str, str, int]] = Counter()
    for event in events:
        local = event.start.astimezone(zone)
        tally[(event.device, local.date().isoformat(), local.hour)] += 1
    ranked = sorted(tally.items(), key=lambda item: (-item[1], item[0]))
    return [Window(*key, events=n) for key, n in ranked[:limit]]


def _lower(tags: Iterable[str]) -> set[str]:
    return {tag.strip().lower() for tag in tags}
