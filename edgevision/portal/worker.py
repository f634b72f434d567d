"""The training worker: a separate process (`python -m edgevision.portal.worker DATA_DIR`) that trains the
iterations queued as `Training`, oldest first, one at a time, so no request thread ever trains.

Restart-safe: a file lock keeps one worker per data folder; a worker that starts finds the iterations a killed
one left `Training` and trains them again from their stored image snapshot (leftovers of the killed run are
removed first). The worker exits when the portal that started it is gone.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from edgevision.portal.iterations import Iterations
from edgevision.portal.service import Portal, now
from edgevision.portal.settings import PortalSettings
from edgevision.train.dataset import ImageList
from edgevision.train.project import PROJECT_FILE, Project, write_json
from edgevision.train.settings import TrainSettings

log = logging.getLogger("edgevision.portal.worker")

POLL_SECONDS = 0.5


def run(settings: PortalSettings, parent: int | None = None) -> None:
    portal = Portal(settings)
    with open(settings.data_dir / "worker.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second worker waits here until the first is gone
        log.info("training worker %d ready on %s", os.getpid(), settings.data_dir)
        while parent is None or os.getppid() == parent:
            job = portal.db.one("SELECT * FROM iterations WHERE status = 'Training' ORDER BY created, id LIMIT 1")
            if job is not None:
                train_one(portal, job)
                continue
            export = portal.db.one("SELECT * FROM exports WHERE status = 'Exporting' ORDER BY created LIMIT 1")
            if export is not None:
                Iterations(portal).build_export(export)
                continue
            time.sleep(POLL_SECONDS)


def train_one(portal: Portal, job) -> None:
    started = time.monotonic()
    log.info("training %s of project %s (%s)", job["name"], job["project_id"], job["training_type"])
    try:
        result = _train(portal, job)
    except Exception as exc:  # a failed run is the iteration's state, shown to the client, not a crash
        log.warning("%s of project %s failed: %s", job["name"], job["project_id"], exc)
        with portal.db.transaction() as cur:
            cur.execute(
                "UPDATE iterations SET status = 'Failed', error = ?, last_modified = ?"
                " WHERE id = ? AND status = 'Training'",
                (str(exc) or type(exc).__name__, now(), job["id"]),
            )
        return
    with portal.db.transaction() as cur:
        for row in cur.execute(
            "SELECT image_id, sha256 FROM iteration_images WHERE iteration_id = ?", (job["id"],)
        ).fetchall():
            scores = result.held_out.get(row["sha256"])
            if scores is not None:
                cur.execute(
                    "UPDATE iteration_images SET probabilities = ? WHERE iteration_id = ? AND image_id = ?",
                    (json.dumps([round(p, 6) for p in scores]), job["id"], row["image_id"]),
                )
        cur.execute(
            "UPDATE iterations SET status = 'Completed', number = ?, trained_at = ?, training_seconds = ?,"
            " last_modified = ? WHERE id = ?",
            (result.iteration.number, now(), round(time.monotonic() - started, 2), now(), job["id"]),
        )
    log.info("%s of project %s completed in %.1f s", job["name"], job["project_id"], time.monotonic() - started)


def training_list(portal: Portal, iteration) -> ImageList:
    """An iteration's image snapshot as the trainer's input (tag names as the model's outputs)."""
    names = {t["id"]: t["name"] for t in json.loads(iteration["labels"])}
    entries = []
    for row in portal.db.query(
        "SELECT x.sha256, x.tag_ids, b.format FROM iteration_images x JOIN blobs b ON b.sha256 = x.sha256"
        " WHERE x.iteration_id = ? ORDER BY x.created, x.image_id",
        (iteration["id"],),
    ):
        tags = tuple(sorted(names[t] for t in json.loads(row["tag_ids"]) if t in names))
        entries.append((portal.store.path(row["sha256"], row["format"]), tags))
    return ImageList(portal.store.root, tuple(entries), iteration["classification_type"] == "Multilabel")


def _train(portal: Portal, job):
    project_dir = portal.project_dir(job["project_id"])
    _prepare_project(portal, job, project_dir, json.loads(job["labels"]))
    source = training_list(portal, job)
    settings = TrainSettings(cache=str(portal.root / "cache" / "features"))
    if job["training_type"] == "Advanced":
        from edgevision.train.finetune import AdvancedOptions, train_advanced

        minutes = min(job["reserved_budget_in_hours"] * 60, portal.settings.advanced_max_minutes)
        return train_advanced(
            source,
            project_dir,
            settings,
            AdvancedOptions(budget_minutes=minutes),
            show_progress=False,
            iteration_id=job["id"],
        )
    from edgevision.train.trainer import train

    return train(source, project_dir, settings, show_progress=False, iteration_id=job["id"])


def _prepare_project(portal: Portal, job, project_dir: Path, labels: list[dict]) -> None:
    """The trainer's project folder under the portal's ids and tag ids; what a killed run left is removed."""
    project = portal.project_row(job["project_id"])
    if (project_dir / PROJECT_FILE).is_file():
        data = Project.open(project_dir).data
    else:
        project_dir.mkdir(parents=True, exist_ok=True)
        data = {"id": project["id"], "created": project["created"], "tags": [], "published": {}}
    known = {t["name"]: t for t in data.get("tags", [])}
    for label in labels:  # a renamed tag keeps its id: the id wins over the old name
        known = {name: t for name, t in known.items() if t["id"] != label["id"]}
        known[label["name"]] = {"id": label["id"], "name": label["name"], "created": now()}
    data.update(name=project["name"], classificationType=project["classification_type"], tags=list(known.values()))
    write_json(project_dir / PROJECT_FILE, data)
    iterations = project_dir / "iterations"
    for folder in iterations.iterdir() if iterations.is_dir() else []:
        leftover = folder.name.startswith(".")
        if not leftover and (folder / "iteration.json").is_file():
            leftover = json.loads((folder / "iteration.json").read_text(encoding="utf-8")).get("id") == job["id"]
        if leftover:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m edgevision.portal.worker DATA_DIR [PARENT_PID]` (the portal starts it so)."""
    from edgevision.cli import configure_logging

    args = sys.argv[1:] if argv is None else argv
    configure_logging()
    parent = int(args[1]) if len(args) > 1 else None
    settings = PortalSettings.from_env(data_dir=args[0] if args else None)
    try:
        run(settings, parent)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
