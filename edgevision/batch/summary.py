"""`edgevision summarize`: how many files of each folder got each top tag, and what share of the folder that is.

For aerial tiles laid out as AREA/YEAR/*.png this is the land-use table: the share of Developed / Cultivated /
Barren tiles per area (`--by 1`) or per area and year (`--by 2` or `--by folder`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edgevision.batch.output import RUN, OutputError, scores_path
from edgevision.batch.scoring import ROOT_FOLDER
from edgevision.errors import EdgeVisionError

MAX_CHART_TAGS = 8  # more tags than this are drawn as "other"
MAX_CHART_GROUPS = 40  # the largest groups only; the CSV has them all
OTHER = "(other)"


class SummaryError(EdgeVisionError):
    """The summary cannot be made (bad --by, unreadable scores)."""


@dataclass(frozen=True)
class Summary:
    table: object  # pandas DataFrame: folder (the group), images, errors, tag, count, share
    text: str
    csv: Path
    png: Path


def group_key(folder: str, by: str | int) -> str:
    """`folder` itself, or its first `by` levels ("ca025/2016/x" by 1 -> "ca025")."""
    if by == "folder" or folder == ROOT_FOLDER:
        return folder
    return "/".join(folder.split("/")[: int(by)])


def parse_by(by: str) -> str | int:
    if by == "folder":
        return by
    try:
        level = int(by)
    except ValueError:
        level = 0
    if level < 1:
        raise SummaryError(f"--by expects 'folder' or a folder level 1, 2, ..., got {by!r}")
    return level


def summarize(out: str, by: str = "folder") -> Summary:
    """Read OUT/scores.parquet, write OUT/summary-<by>.csv and .png, return the table and its printout."""
    level = parse_by(by)
    table = summary_table(_read_scores(out), level, _labels(out))
    name = "summary-folder" if level == "folder" else f"summary-level{level}"
    csv, png = Path(out, f"{name}.csv"), Path(out, f"{name}.png")
    table.to_csv(csv, index=False, float_format="%.6f")
    _chart(table, png, "folder" if level == "folder" else f"folder level {level}")
    return Summary(table, render(table), csv, png)


def summary_table(scores, by: str | int, labels: list[str] | None = None):
    """Long table, one row per (group, tag): group, images (scored), errors, tag, count, share of images."""
    import pandas as pd

    scores = scores.assign(group=[group_key(f, by) for f in scores["folder"]])
    ok = scores[scores["error"].isna()]
    tags = list(ok["top_tag"].value_counts().index)
    if labels and len(labels) <= MAX_CHART_TAGS * 4:  # small label sets: show tags nobody got, with 0
        tags = sorted(set(tags) | set(labels), key=lambda t: (labels.index(t) if t in labels else len(labels), t))
    counts = ok.groupby(["group", "top_tag"]).size()
    groups = scores.groupby("group").agg(files=("path", "size"), errors=("error", "count"))
    rows = []
    for group, stats in groups.sort_index().iterrows():
        images = int(stats["files"] - stats["errors"])
        for tag in tags:
            count = int(counts.get((group, tag), 0))
            share = count / images if images else float("nan")
            rows.append((group, images, int(stats["errors"]), tag, count, share))
    return pd.DataFrame(rows, columns=["folder", "images", "errors", "tag", "count", "share"])


def render(table) -> str:
    """A wide, readable table: one line per group, share of each (frequent) tag in percent."""
    wide = _wide_shares(table)
    if wide.empty:
        return "no scored files"
    header = ["folder", "images", "errors", *[str(c) for c in wide.columns[2:]]]
    lines = [header]
    for group, row in wide.iterrows():
        shares = [f"{100 * v:.1f}%" if v == v else "-" for v in row.iloc[2:]]
        lines.append([str(group), str(int(row["images"])), str(int(row["errors"])), *shares])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    )


def _wide_shares(table):
    """group -> images, errors, share per tag (the MAX_CHART_TAGS most frequent; the rest as OTHER)."""
    if table.empty:
        return table
    totals = table.groupby("tag", sort=False)["count"].sum().sort_values(ascending=False, kind="stable")
    keep = list(totals.index[:MAX_CHART_TAGS])
    frame = table.assign(tag=[t if t in keep else OTHER for t in table["tag"]])
    shares = frame.groupby(["folder", "tag"], sort=False)["share"].sum().unstack("tag")
    columns = keep + ([OTHER] if OTHER in shares.columns else [])
    stats = table.groupby("folder")[["images", "errors"]].first()
    return stats.join(shares[columns])


def _chart(table, png: Path, by_label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wide = _wide_shares(table)
    if not wide.empty:
        wide = wide.sort_values("images", ascending=False, kind="stable").head(MAX_CHART_GROUPS).sort_index()
    shares = wide.iloc[:, 2:].fillna(0.0) * 100 if not wide.empty else wide
    fig, ax = plt.subplots(figsize=(10, max(2.5, 1.3 + 0.45 * len(shares))))
    left = [0.0] * len(shares)
    labels = [f"{g} ({int(n)})" for g, n in zip(shares.index, wide["images"], strict=True)] if len(shares) else []
    for tag in shares.columns:
        bars = ax.barh(labels, shares[tag], left=left, label=str(tag))
        ax.bar_label(bars, [f"{v:.0f}%" if v >= 8 else "" for v in shares[tag]], label_type="center", fontsize=8)
        left = [a + b for a, b in zip(left, shares[tag], strict=True)]
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of scored images (%)")
    ax.set_ylabel(f"{by_label} (images)")
    ax.invert_yaxis()
    ax.set_title(f"Top tag per {by_label}")
    if len(shares.columns):
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def _read_scores(out: str):
    import pandas as pd

    path = scores_path(out)
    try:
        return pd.read_parquet(path, columns=["path", "folder", "top_tag", "error"])
    except Exception as exc:  # pyarrow raises several types for a damaged or foreign file
        raise OutputError(f"{path}: cannot read the scores: {exc}") from None


def _labels(out: str) -> list[str] | None:
    try:
        return json.loads(Path(out, RUN).read_text(encoding="utf-8")).get("labels")
    except (OSError, ValueError):
        return None
