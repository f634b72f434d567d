"""The interactions report: `report.html` (self-contained: the plots are embedded) with the PNGs and CSVs
beside it, from a capture folder or a Camtrap DP package.

Plots are drawn with matplotlib's Agg canvas on `Figure` objects (no pyplot state, no display needed).
"""

from __future__ import annotations

import base64
import csv
import html
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timezone, tzinfo
from pathlib import Path
from typing import Any

from edgevision.captures import analysis
from edgevision.captures.analysis import CountRow, Event, Window
from edgevision.captures.records import Frames

MAX_TAGS = 8  # tags drawn one by one; the rest are summed as "other"
MAX_MATRIX = 12  # tags in the co-occurrence matrix
MAX_EVENTS_LISTED = 100


@dataclass
class ReportOptions:
    animals: list[str] = field(default_factory=lambda: ["deer"])
    partners: list[str] = field(default_factory=lambda: ["person", "dog"])
    window: float = 30.0
    zone: tzinfo | None = None
    zone_name: str = "UTC"
    title: str = "Kept frames and interactions"


@dataclass
class Report:
    out: Path
    frames: int
    events: list[Event]
    plots: list[Path]
    tables: list[Path]


def write_report(source: Frames, source_name: str, out: str | Path, options: ReportOptions) -> Report:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    zone = options.zone or timezone.utc
    frames = source.frames
    rows = analysis.counts(frames, zone)
    pairs = analysis.cooccurrence(frames)
    events = analysis.interactions(frames, options.animals, options.partners, options.window)
    windows = analysis.top_windows(events, zone)
    totals = analysis.tag_totals(frames)
    tables = _write_tables(out, rows, pairs, events, windows, source)
    plots = _draw_plots(out, source, rows, pairs, events, totals, zone)
    page = _html(source, source_name, options, rows, pairs, events, windows, totals, plots, tables)
    (out / "report.html").write_text(page, encoding="utf-8")
    return Report(out, len(frames), events, plots, tables)


# -- CSV ----------------------------------------------------------------------------------------------


def _write_tables(out: Path, rows, pairs, events, windows, source: Frames) -> list[Path]:
    written = [
        _csv(out / "counts.csv", ["device", "tag", "date", "hour", "frames"], _count_cells(rows)),
        _csv(
            out / "cooccurrence.csv", ["tag_a", "tag_b", "frames"], [[a, b, n] for (a, b), n in sorted(pairs.items())]
        ),
        _csv(
            out / "interactions.csv",
            ["device", "start", "end", "seconds", "animal_frames", "partner_frames", "partners", "closest_seconds"],
            [_event_cells(event) for event in events],
        ),
        _csv(out / "top_windows.csv", ["device", "date", "hour", "events"], [_window_cells(w) for w in windows]),
        _csv(out / "skipped.csv", ["path", "reason"], [[s.path, s.reason] for s in source.skipped]),
    ]
    return written


def _count_cells(rows: Sequence[CountRow]) -> list[list[Any]]:
    return [[r.device, r.tag, r.date, r.hour, r.frames] for r in rows]


def _event_cells(event: Event) -> list[Any]:
    return [
        event.device,
        event.start.isoformat(),
        event.end.isoformat(),
        f"{event.seconds:.1f}",
        event.animal_frames,
        event.partner_frames,
        " ".join(event.partners),
        f"{event.closest:.1f}",
    ]


def _window_cells(window: Window) -> list[Any]:
    return [window.device, window.date, window.hour, window.events]


def _csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


# -- plots --------------------------------------------------------------------------------------------


def _draw_plots(out: Path, source: Frames, rows, pairs, events, totals, zone) -> list[Path]:
    shown = [tag for tag, _ in totals.most_common(MAX_TAGS)]
    plots = [
        _save(
            out / "frames_per_hour.png",
            lambda fig: _stacked(fig, _by(rows, shown, "hour"), list(range(24)), "hour of day"),
        ),
        _save(out / "frames_per_day.png", lambda fig: _stacked(fig, _by(rows, shown, "date"), _dates(rows), "date")),
        _save(out / "devices.png", lambda fig: _stacked(fig, _by(rows, shown, "device"), source.devices, "device")),
        _save(out / "cooccurrence.png", lambda fig: _matrix(fig, pairs, totals), height=5.0, width=6.5),
        _save(out / "interactions_per_hour.png", lambda fig: _event_hours(fig, events, source.devices, zone)),
    ]
    if len(source.devices) > 1:
        plots.append(
            _save(
                out / "frames_per_hour_by_device.png",
                lambda fig: _hours_by_device(fig, rows, shown, source.devices),
                height=1.8 * len(source.devices) + 1,
            )
        )
    return plots


def _save(path: Path, draw: Callable[[Any], None], height: float = 3.6, width: float = 9.0) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    draw(fig)
    fig.savefig(path, format="png")
    return path


def _by(rows: Sequence[CountRow], shown: list[str], key: str) -> dict[str, Counter]:
    """tag (or "other") -> Counter over `key` values."""
    series: dict[str, Counter] = {}
    for row in rows:
        tag = row.tag if row.tag in shown else "other"
        series.setdefault(tag, Counter())[getattr(row, key)] += row.frames
    order = [*shown, "other"]
    return {tag: series[tag] for tag in order if tag in series}


def _dates(rows: Sequence[CountRow]) -> list[str]:
    return sorted({row.date for row in rows})


def _stacked(fig, series: dict[str, Counter], xs: list, xlabel: str, ax=None) -> None:
    ax = ax or fig.add_subplot()
    if not series:
        _empty(ax)
        return
    positions = list(range(len(xs)))
    bottom = [0] * len(xs)
    for tag, counter in series.items():
        heights = [counter.get(x, 0) for x in xs]
        ax.bar(positions, heights, bottom=bottom, label=tag, width=0.8)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_xticks(positions, [str(x) for x in xs], rotation=45 if len(xs) > 12 and xlabel != "hour of day" else 0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("kept frames")
    ax.legend(fontsize="small", ncols=2)


def _hours_by_device(fig, rows: Sequence[CountRow], shown: list[str], devices: list[str]) -> None:
    axes = fig.subplots(len(devices), 1, sharex=True, squeeze=False)
    for ax, device in zip(axes[:, 0], devices, strict=True):
        _stacked(
            fig, _by([r for r in rows if r.device == device], shown, "hour"), list(range(24)), "hour of day", ax=ax
        )
        ax.set_title(device, fontsize="medium")


def _matrix(fig, pairs: Counter, totals: Counter) -> None:
    ax = fig.add_subplot()
    tags = sorted({tag for pair in pairs for tag in pair}, key=lambda t: -totals[t])[:MAX_MATRIX]
    if not tags:
        _empty(ax, "no frame carries two tags (a single-label model?)")
        return
    index = {tag: i for i, tag in enumerate(tags)}
    grid = [[0] * len(tags) for _ in tags]
    for (a, b), n in pairs.items():
        if a in index and b in index:
            grid[index[a]][index[b]] = grid[index[b]][index[a]] = n
    image = ax.imshow(grid, cmap="Blues")
    ax.set_xticks(range(len(tags)), tags, rotation=45, ha="right")
    ax.set_yticks(range(len(tags)), tags)
    top = max(max(line) for line in grid)
    for i, line in enumerate(grid):
        for j, n in enumerate(line):
            if n:
                color = "white" if n > top / 2 else "black"  # readable on the dark cells too
                ax.text(j, i, str(n), ha="center", va="center", fontsize="small", color=color)
    fig.colorbar(image, ax=ax, label="frames with both tags")


def _event_hours(fig, events: Sequence[Event], devices: list[str], zone) -> None:
    ax = fig.add_subplot()
    if not events:
        _empty(ax, "no interaction events")
        return
    series = {
        device: Counter(e.start.astimezone(zone).hour for e in events if e.device == device) for device in devices
    }
    _stacked(fig, {d: c for d, c in series.items() if c}, list(range(24)), "hour of day", ax=ax)
    ax.set_ylabel("interaction events")


def _empty(ax, text: str = "no frames") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


# -- HTML ---------------------------------------------------------------------------------------------


def _html(source, source_name, options, rows, pairs, events, windows, totals, plots, tables) -> str:
    e = html.escape
    frames = source.frames
    zone = options.zone or timezone.utc
    period = f"{_local(frames[0].when, zone)} to {_local(frames[-1].when, zone)}" if frames else "no frames"
    summary = [
        ("source", f"{source_name} ({source.kind})"),
        ("kept frames", len(frames)),
        ("devices", ", ".join(source.devices) or "none"),
        ("period", period),
        ("hours and dates in", options.zone_name),
        ("interaction", f"{', '.join(options.animals)} with {', '.join(options.partners)} within {options.window:g} s"),
        ("interaction events", len(events)),
        ("skipped files", len(source.skipped)),
    ]
    by_device = Counter(frame.device for frame in frames)
    events_by_device = Counter(event.device for event in events)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(options.title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{e(options.title)}</h1>",
        _table(["", ""], summary, "summary"),
        "<h2>Kept frames per tag</h2>",
        _table(["tag", "frames"], totals.most_common(), "tags"),
        _img(plots, "frames_per_hour.png", "kept frames per tag per hour of day"),
        _img(plots, "frames_per_day.png", "kept frames per tag per day"),
        "<h2>Per device</h2>",
        _table(
            ["device", "frames", "interaction events"],
            [(d, by_device[d], events_by_device[d]) for d in source.devices],
            "devices",
        ),
        _img(plots, "devices.png", "kept frames per tag per device"),
        _img(plots, "frames_per_hour_by_device.png", "kept frames per hour of day, per device"),
        "<h2>Tags in the same frame</h2>",
        _table(["tag", "tag", "frames"], [(a, b, n) for (a, b), n in pairs.most_common()], "cooccurrence"),
        _img(plots, "cooccurrence.png", "co-occurrence of tags in the same frame"),
        "<h2>Interaction events</h2>",
        _img(plots, "interactions_per_hour.png", "interaction events per hour of day"),
        "<h3>Top time windows</h3>",
        _table(["device", "date", "hour", "events"], [_window_cells(w) for w in windows], "windows"),
        f"<h3>Events (first {MAX_EVENTS_LISTED})</h3>",
        _table(
            ["device", "start", "end", "seconds", "animal frames", "partner frames", "partners", "closest s"],
            [_event_cells(event) for event in events[:MAX_EVENTS_LISTED]],
            "events",
        ),
        "<h2>Skipped files</h2>",
        _table(["file", "reason"], [(s.path, s.reason) for s in source.skipped], "skipped"),
        "<h2>Data</h2><ul>",
        *(f"<li><a href='{e(t.name)}'>{e(t.name)}</a></li>" for t in tables),
        "</ul></body></html>",
    ]
    return "\n".join(part for part in parts if part)


def _local(when, zone) -> str:
    return when.astimezone(zone).isoformat(timespec="seconds")


def _table(header: list[str], rows, name: str) -> str:
    e = html.escape
    if not rows:
        return f"<p class='none' id='{name}'>none</p>"
    head = "".join(f"<th>{e(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table id='{name}'><tr>{head}</tr>{body}</table>"


def _img(plots: list[Path], name: str, alt: str) -> str:
    path = next((p for p in plots if p.name == name), None)
    if path is None:
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    alt = html.escape(alt)
    return f"<figure><img src='data:image/png;base64,{data}' alt='{alt}'><figcaption>{alt}</figcaption></figure>"


STYLE = (
    "body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
    "img{max-width:100%}figcaption{color:#555;font-size:small}.none{color:#777}"
)
