"""Soak: the whole solution under the local runtime while its parts are killed (kill -9) at random.

    .venv/bin/python bench/soak.py [--minutes 5] [--kill-every 5] [--recover 45] [--seed 1] [--out DIR]

The demo manifest runs with the clip looping (the camera never finishes). During the kill phase, every
`--kill-every` seconds one random target is killed: a module process or the broker of a module. Then nothing
is killed for `--recover` seconds, longer than the runtime's longest restart back-off (30 s), and the run
ends. The checks are what a field device needs: every module and broker came back as its restart policy
says, the camera kept scoring and its results reached `$upstream` after the last kill, no capture is partial
(a JPEG without its sidecar, a temp file) or lost (an announced capture that is not on disk), and no process
of the run outlives it. It prints the counts as JSON (and exits 1 when a check fails); docs/benchmarks.md
quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgevision.files import is_temp_file, write_atomic  # noqa: E402
from edgevision.runtime.demo import DEMO_MANIFEST, demo_clip  # noqa: E402

CAMERA = "camera-capture"


@dataclass
class SoakReport:
    seconds: float
    kills: dict[str, int] = field(default_factory=dict)  # target -> kill -9 sent
    restarts: dict[str, int] = field(default_factory=dict)  # target -> restarts the runtime counted
    results_upstream: int = 0
    results_after_last_kill: int = 0
    captures_on_disk: int = 0
    capture_events: int = 0
    partial_captures: list[str] = field(default_factory=list)
    lost_captures: list[str] = field(default_factory=list)
    leaked_processes: list[int] = field(default_factory=list)
    runtime_exit: int | None = None
    failures: list[str] = field(default_factory=list)


def soak_manifest(out: Path) -> tuple[Path, str]:
    """The demo manifest with the clip looping: a camera that runs until the runtime stops it."""
    manifest = json.loads(DEMO_MANIFEST.read_text(encoding="utf-8"))
    modules = manifest["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"]
    modules[CAMERA]["env"]["LOOP_VIDEO"] = {"value": "true"}
    path = out / "deployment.soak.json"
    write_atomic(path, json.dumps(manifest, indent=2))
    return path, str(demo_clip(out).resolve())


def read_state(run: Path) -> dict[str, Any]:
    try:
        return json.loads((run / "runtime.json").read_text(encoding="utf-8"))["modules"]
    except (OSError, ValueError, KeyError):
        return {}


def targets(state: dict[str, Any]) -> dict[str, int]:
    """Kill targets now running: `module` and `module broker` -> pid."""
    found = {}
    for name, module in state.items():
        if module.get("status") == "running" and module.get("pid"):
            found[name] = module["pid"]
        if module.get("brokerPid"):
            found[f"{name} broker"] = module["brokerPid"]
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead; only its parent has not read its status yet
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line or environment names `text` (every process of a run names its folder)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            blob = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in blob and alive(int(proc.name)):
            pids.append(int(proc.name))
    return pids


def wait_for_modules(run: Path, runtime: subprocess.Popen[bytes], timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(run)
        if state and all(m.get("status") == "running" and m.get("brokerPid") for m in state.values()):
            return state
        if runtime.poll() is not None:
            break
        time.sleep(0.5)
    raise RuntimeError(f"the runtime did not start every module (see {run / 'logs'})")


def soak(out: Path, *, minutes: float, kill_every: float, recover: float, seed: int) -> SoakReport:
    out.mkdir(parents=True, exist_ok=True)
    manifest, clip = soak_manifest(out)
    run = out / "run"
    duration = minutes * 60
    command = [sys.executable, "-m", "edgevision", "run", str(manifest), "--out", str(run)]
    command += ["--duration", f"{duration:g}", "--set", f"DEMO_CLIP={clip}"]
    started = time.monotonic()
    with open(out / "runtime.log", "wb") as log:
        runtime = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    report = SoakReport(seconds=duration)
    seen: set[int] = set()
    last_kill = datetime.now(timezone.utc)
    try:
        wait_for_modules(run, runtime)
        chooser = random.Random(seed)
        kill_until = started + duration - recover
        while time.monotonic() + kill_every < kill_until and runtime.poll() is None:
            time.sleep(kill_every)
            running = targets(read_state(run))
            seen.update(running.values())
            if not running:
                continue
            name = chooser.choice(sorted(running))
            try:
                os.kill(running[name], signal.SIGKILL)
            except ProcessLookupError:
                continue  # it died on its own between reading the state and the kill: the runtime sees it
            report.kills[name] = report.kills.get(name, 0) + 1
            last_kill = datetime.now(timezone.utc)
        while runtime.poll() is None and time.monotonic() < started + duration + 60:
            seen.update(targets(read_state(run)).values())
            time.sleep(1)
    finally:
        if runtime.poll() is None:
            runtime.send_signal(signal.SIGINT)
        report.runtime_exit = runtime.wait(60)
    time.sleep(1)  # processes killed at the end get reaped
    check(report, run, last_kill, seen)
    return report


def check(report: SoakReport, run: Path, last_kill: datetime, seen: set[int]) -> None:
    state = read_state(run)
    for name, module in state.items():
        report.restarts[name] = module.get("restarts", 0)
        report.restarts[f"{name} broker"] = module.get("brokerRestarts", 0)
    for target, kills in report.kills.items():
        if report.restarts.get(target, 0) < kills:
            report.failures.append(f"{target}: killed {kills} times, restarted {report.restarts.get(target, 0)}")

    upstream = []
    for line in (run / "upstream.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            upstream.append(json.loads(line))
    results = [r for r in upstream if r["output"] == "output1"]
    events = [r for r in upstream if r["output"] == "captures"]
    report.results_upstream = len(results)
    report.results_after_last_kill = sum(datetime.fromisoformat(r["time"]) > last_kill for r in results)
    report.capture_events = len(events)
    if not report.results_after_last_kill:
        report.failures.append("no camera result reached $upstream after the last kill")

    captures = run / "captures"
    files = [p for p in captures.rglob("*") if p.is_file()]
    jpegs = {p for p in files if p.suffix == ".jpg"}
    report.captures_on_disk = len(jpegs)
    for path in files:
        partner = path.with_suffix(".json" if path.suffix == ".jpg" else ".jpg")
        if is_temp_file(path) or (path.suffix in (".jpg", ".json") and not partner.exists()):
            report.partial_captures.append(str(path.relative_to(captures)))
    for event in events:
        if not (captures / event["body"]["file"]).is_file():
            report.lost_captures.append(event["body"]["file"])
    if report.partial_captures or report.lost_captures:
        report.failures.append("captures partial or lost")

    report.leaked_processes = sorted({p for p in seen if alive(p)} | set(processes_mentioning(str(run.resolve()))))
    if report.leaked_processes:
        report.failures.append(f"processes outlived the run: {report.leaked_processes}")
    if report.runtime_exit not in (0, None):
        report.failures.append(f"the runtime exited with {report.runtime_exit}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the whole run")
    parser.add_argument("--kill-every", type=float, default=5.0, help="seconds between two kills")
    parser.add_argument("--recover", type=float, default=45.0, help="seconds without kills at the end")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("edgevision-runs") / f"soak-{int(time.time())}")
    args = parser.parse_args()
    report = soak(args.out, minutes=args.minutes, kill_every=args.kill_every, recover=args.recover, seed=args.seed)
    print(json.dumps({"machine": f"{os.cpu_count()} cores", **asdict(report)}, indent=2))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
