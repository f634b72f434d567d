"""report.html: one self-contained page per iteration (plots and thumbnails embedded as base64), readable
offline and safe to mail around."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from edgevision.train.dataset import Dataset

MAX_THUMBNAILS = 200
THUMBNAIL_PIXELS = 96

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}.big{font-size:1.3em;font-weight:600}
.muted{color:#666}img.t{width:96px;height:auto;vertical-align:middle}
"""


def write_report(path: Path, project, info: dict, metrics: dict, dataset: Dataset) -> None:
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{_e(project.name)} iteration {info['number']}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_e(project.name)} &mdash; iteration {info['number']}</h1>",
        f"<p class=muted>project {_e(project.id)} &middot; iteration {_e(info['id'])} &middot; {_e(info['created'])}"
        f" &middot; {_e(metrics['classificationType'])}</p>",
        _summary(metrics),
        f"<p>{_e(metrics['evaluation']['description'])}.</p>",
        _quantized(metrics),
        _tag_table(metrics),
        "<h2>Confusion matrix</h2>",
        _confusion(metrics),
        "<h2>Precision-recall curves</h2>",
        _img(_pr_plot(metrics)),
        _misclassified(metrics),
        _problems(metrics),
        _settings(info),
        "</body></html>",
    ]
    path.write_text("\n".join(parts), encoding="utf-8")


def _e(value) -> str:
    return html.escape(str(value))


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _summary(metrics: dict) -> str:
    cells = [
        ("Precision", _pct(metrics["precision"])),
        ("Recall", _pct(metrics["recall"])),
        ("mAP", _pct(metrics["meanAveragePrecision"])),
        (
            "Top-1 accuracy" if metrics["classificationType"] == "Multiclass" else "Exact match",
            _pct(metrics["accuracy"]),
        ),
    ]
    head = "".join(f"<th>{name}</th>" for name, _ in cells)
    body = "".join(f"<td class=big>{value}</td>" for _, value in cells)
    return (
        f"<table><tr>{head}</tr><tr>{body}</tr></table>"
        f"<p>Probability threshold {metrics['threshold']:g}, {metrics['images']} images.</p>"
    )


def _quantized(metrics: dict) -> str:
    """Exported flavours (`edgevision export --quantize int8`) scored on the same held-out images."""
    flavours = metrics.get("quantized", {})
    if not flavours:
        return ""
    rows = [("float (model/)", metrics)] + [(f"{name} (model-{name}/)", m) for name, m in flavours.items()]
    body = "".join(
        f"<tr><td class=l>{_e(name)}</td><td>{_pct(m['precision'])}</td><td>{_pct(m['recall'])}</td>"
        f"<td>{_pct(m['meanAveragePrecision'])}</td><td>{_pct(m['accuracy'])}</td></tr>"
        for name, m in rows
    )
    return (
        "<h2>Exported flavours, same held-out images</h2><table><tr><th class=l>model</th><th>Precision</th>"
        f"<th>Recall</th><th>mAP</th><th>Accuracy</th></tr>{body}</table>"
    )


def _tag_table(metrics: dict) -> str:
    rows = "".join(
        f"<tr><td class=l>{_e(t['tag'])}</td><td>{t['images']}</td><td>{_pct(t['precision'])}</td>"
        f"<td>{_pct(t['recall'])}</td><td>{_pct(t['averagePrecision'])}</td></tr>"
        for t in metrics["tags"]
    )
    return (
        "<h2>Performance per tag</h2><table><tr><th class=l>Tag</th><th>Images</th><th>Precision</th>"
        f"<th>Recall</th><th>AP</th></tr>{rows}</table>"
    )


def _confusion(metrics: dict) -> str:
    matrix = metrics["confusionMatrix"]
    if "counts" not in matrix:  # multi-label: a 2 x 2 table per tag
        rows = "".join(
            f"<tr><td class=l>{_e(tag)}</td><td>{tn}</td><td>{fp}</td><td>{fn}</td><td>{tp}</td></tr>"
            for tag, ((tn, fp), (fn, tp)) in matrix["perTag"].items()
        )
        return f"<table><tr><th class=l>Tag</th><th>TN</th><th>FP</th><th>FN</th><th>TP</th></tr>{rows}</table>"
    head = "".join(f"<th>{_e(c)}</th>" for c in matrix["columns"])
    rows = "".join(
        f"<tr><th class=l>{_e(tag)}</th>" + "".join(f"<td>{n}</td>" for n in counts) + "</tr>"
        for tag, counts in zip(matrix["rows"], matrix["counts"], strict=True)
    )
    table = f"<table><tr><th class=l>true \\ predicted</th>{head}</tr>{rows}</table>"
    return table + _img(_confusion_plot(matrix))


def _figure():
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its first-run font cache notice is noise
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    _figure().close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _img(png_b64: str, alt: str = "plot") -> str:
    return f'<img alt="{alt}" src="data:image/png;base64,{png_b64}">'


def _confusion_plot(matrix: dict) -> str:
    plt = _figure()
    counts = np.array(matrix["counts"])
    size = 1.2 + 0.6 * len(matrix["columns"])
    fig, ax = plt.subplots(figsize=(size + 1, size))
    ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(len(matrix["columns"])), matrix["columns"], rotation=45, ha="right")
    ax.set_yticks(range(len(matrix["rows"])), matrix["rows"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (r, c), n in np.ndenumerate(counts):
        ax.text(c, r, str(n), ha="center", va="center", color="white" if n > counts.max() / 2 else "black")
    return _png(fig)


def _pr_plot(metrics: dict) -> str:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for tag in metrics["tags"]:
        curve = tag["prCurve"]
        recall = [0.0, *curve["recall"]]
        precision = [curve["precision"][0] if curve["precision"] else 1.0, *curve["precision"]]
        ax.step(recall, precision, where="post", label=f"{tag['tag']} (AP {tag['averagePrecision']:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    return _png(fig)


def _thumbnail(path: str) -> str:
    from PIL import Image

    from edgevision.models import decode_image

    try:
        image = decode_image(Path(path).read_bytes())
    except Exception:  # the file changed since training: list it without a picture
        return ""
    image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS), Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return f'<img class=t alt="" src="data:image/jpeg;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _misclassified(metrics: dict) -> str:
    wrong = metrics["misclassified"]
    if not wrong:
        return "<h2>Misclassified images</h2><p>None: every held-out image got its tags.</p>"
    rows = []
    for i, item in enumerate(wrong):
        picture = _thumbnail(item["path"]) if i < MAX_THUMBNAILS else ""
        probabilities = ", ".join(f"{_e(t)} {p:.2f}" for t, p in item["probabilities"].items())
        rows.append(
            f"<tr><td>{picture}</td><td class=l>{_e(item['path'])}</td>"
            f"<td class=l>{_e(', '.join(item['tags']) or '(negative)')}</td>"
            f"<td class=l>{_e(', '.join(item['predicted']) or '(none)')}</td><td class=l>{probabilities}</td></tr>"
        )
    return (
        f"<h2>Misclassified images ({len(wrong)})</h2><table><tr><th></th><th class=l>File</th>"
        f"<th class=l>Tagged</th><th class=l>Predicted</th><th class=l>Probabilities</th></tr>{''.join(rows)}</table>"
    )


def _problems(metrics: dict) -> str:
    out = []
    if metrics["skipped"]:
        rows = "".join(
            f"<tr><td class=l>{_e(s['path'])}</td><td class=l>{_e(s['reason'])}</td></tr>" for s in metrics["skipped"]
        )
        out.append(
            f"<h2>Skipped files ({len(metrics['skipped'])})</h2><p>Not used for training; nothing was changed on"
            f" disk.</p><table><tr><th class=l>File</th><th class=l>Why</th></tr>{rows}</table>"
        )
    if metrics["duplicates"]:
        rows = "".join(
            f"<tr><td class=l>{'<br>'.join(_e(p) for p in d['paths'])}</td>"
            f"<td class=l>{'<br>'.join(_e(', '.join(t) or '(negative)') for t in d['tags'])}</td>"
            f"<td class=l>{'different tags: not used' if d['conflict'] else 'same tags: used once'}</td></tr>"
            for d in metrics["duplicates"]
        )
        out.append(
            f"<h2>Duplicate images ({len(metrics['duplicates'])})</h2><p>The same picture (same content) at"
            " several paths.</p><table><tr><th class=l>Files</th><th class=l>Tags</th><th class=l>Handling</th>"
            f"</tr>{rows}</table>"
        )
    return "\n".join(out)


def _settings(info: dict) -> str:
    rows = "".join(f"<tr><td class=l>{_e(k)}</td><td class=l>{_e(v)}</td></tr>" for k, v in info["settings"].items())
    data = info["dataset"]
    counts = ", ".join(f"{_e(tag)} {n}" for tag, n in data["perTag"].items())
    return (
        f"<h2>Data and settings</h2><p>{_e(data['source'])}: {data['images']} images ({counts});"
        f" fingerprint <code>{_e(data['fingerprint'][:16])}</code>. Training took {info['trainingSeconds']} s.</p>"
        f"<table>{rows}</table>"
    )
