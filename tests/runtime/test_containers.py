"""`edgevision run --containers`: the manifest's createOptions become `docker run` arguments, and the demo runs
as the three module images on a real engine with the same brokers, routes and twins as process mode."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgevision import __version__
from edgevision.runtime import containers, manifest
from edgevision.runtime.containers import ContainerError, ContainerPlan
from tests.conftest import ROOT, wait_until
from tests.images.engine import build_images, docker_ready
from tests.runtime.conftest import manifest as deployment_manifest
from tests.runtime.conftest import read_jsonl

CAPTURE_TAGS = {"zebra", "African elephant"}  # the demo manifest's twin


def test_module_images_of_a_template_are_the_tags_scripts_images_sh_builds() -> None:
    assert containers.local_tag("${MODULES.CameraCapture}", ROOT, "amd64") == (
        f"edgevision-camera-capture:{__version__}-amd64"
    )
    assert containers.local_tag("${MODULES.SenseHatDisplay.debug}", ROOT, "arm32v7") == (
        f"edgevision-sensehat-display:{__version__}-arm32v7.debug"
    )
    assert containers.local_tag("reg.io/x/scorer:2.0", ROOT, "amd64") == "reg.io/x/scorer:2.0"
    with pytest.raises(ContainerError, match=r"no modules/Nothing/module\.json"):
        containers.local_tag("${MODULES.Nothing}", ROOT, "amd64")


def test_the_templates_create_options_become_docker_run_arguments(tmp_path: Path) -> None:
    settings = manifest.read_env_file(ROOT / ".env.template")
    deployment = manifest.load(ROOT / "deployment.template.json", settings, containers=True)
    camera = deployment.modules["camera-capture"]
    plan = ContainerPlan("edgevision-camera-capture:test", "10001", containers._notes(camera.create))
    args = containers.run_arguments(
        camera, plan, "c1", tmp_path / "env", {"edgevision-captures": tmp_path / "v"}, tmp_path / "w", ["a"], {}
    )
    assert args[:6] == ["docker", "run", "--rm", "--name", "c1", "--network"]
    pairs = set(itertools.pairwise(args))
    assert ("-v", f"{tmp_path / 'v'}:/data/captures") in pairs  # the named volume is a folder of the run
    assert ("-v", f"{tmp_path / 'w'}:/var/run/iotedge") in pairs  # the workload socket, where IoT Edge puts it
    assert ("--device", f"{settings['CAMERA_DEVICE']}:/dev/video0:rwm") in pairs
    assert ("--add-host", "a:127.0.0.1") in pairs and ("--user", "10001") in pairs
    assert "--init" in args and args[-1] == "edgevision-camera-capture:test"
    assert "-p" not in args and any("PortBindings not applied" in note for note in plan.notes)

    scorer = deployment.modules["image-classifier-service"]
    args = containers.run_arguments(scorer, ContainerPlan("s"), "c2", tmp_path / "env", {}, tmp_path / "w", [], {})
    assert f"{settings['MODELS_HOST_DIR']}:/models:ro" in args and "--user" not in args  # the image's USER


def test_container_environments_are_refused_when_docker_cannot_carry_them(tmp_path: Path) -> None:
    path = containers.write_env_file(tmp_path / "env" / "m.env", {"A": "1", "B": "x=y z"})
    assert path.read_text() == "A=1\nB=x=y z\n" and path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ContainerError, match="B: a container's variable cannot hold a line break"):
        containers.write_env_file(tmp_path / "m.env", {"B": "two\nlines"})
    assert containers.owner("10001") == (10001, 10001) and containers.owner("10001:44") == (10001, 44)
    assert containers.owner("edgevision") is None and containers.owner("0") is None


@pytest.fixture(scope="module")
def images() -> None:
    reason = docker_ready()
    if reason:
        pytest.skip(reason)
    build = build_images("amd64")  # reuses what tests/images built: seconds
    if build.returncode != 0:
        pytest.skip(f"the module images could not be built (tests/images shows why): {build.stderr[-300:]}")


def _inside(container: str, *command: str) -> str:
    return subprocess.run(["docker", "exec", container, *command], capture_output=True, text=True).stdout.strip()


@pytest.mark.slow
def test_the_demo_runs_as_containers_like_process_mode(images, mosquitto, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    command = [sys.executable, "-m", "edgevision", "run", "--containers", "--out", str(out), "--duration", "110"]
    console = tmp_path / "console.txt"  # a file, not a pipe: the display's LED frames would fill a pipe
    with console.open("w") as sink:
        run = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, text=True)
    try:
        # While the camera plays its clip: the manifest's bind, env and the image's user, inside its container.
        camera = _running_container(out, "camera-capture", run)
        assert _inside(camera, "id", "-u") == "10001"
        assert _inside(camera, "printenv", "VIDEO_PATH") == "/media/demo.avi"
        assert _inside(camera, "sh", "-c", "test -r /media/demo.avi && test -w /captures && echo ok") == "ok"
        run.wait(timeout=150)
    finally:
        run.kill()
    stdout = console.read_text()
    assert run.returncode == 0, stdout[-4000:]
    assert "every module that can finish has finished" in stdout
    blob = "mcr.microsoft.com/azure-blob-storage:latest"  # no registry here: its local stand-in
    assert f"azureblobstorageoniotedge: image {blob} is not on this engine: runs as Azurite" in stdout

    state = json.loads((out / "runtime.json").read_text())["modules"]
    for name in ("image-classifier-service", "camera-capture", "sensehat-display"):
        assert state[name]["image"].startswith(f"edgevision-{name}:{__version__}-")
        assert state[name]["restarts"] == 0 and state[name]["exitCode"] == 0
    # What process mode produces (tests/runtime/test_solution.py), from the containers.
    sidecars = [json.loads(p.read_text()) for p in (out / "captures").rglob("*.json")]
    assert {s["matchedTag"] for s in sidecars} == CAPTURE_TAGS
    assert all(p.stat().st_uid == 10001 for p in (out / "captures").rglob("*.jpg"))
    upstream = read_jsonl(out / "upstream.jsonl")
    results = [r for r in upstream if r["output"] == "output1"]
    assert {r["body"]["topTag"] for r in results} >= CAPTURE_TAGS and not [r for r in upstream if "rejected" in r]
    assert len([r for r in upstream if r["output"] == "captures"]) == len(sidecars)
    assert (out / "display" / "current.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    twin = json.loads((out / "twins" / "camera-capture.json").read_text())
    assert twin["reported"]["stats"]["captures"] == len(sidecars)
    assert twin["reported"]["stats"]["uploadUploaded"] == len(sidecars)  # to Azurite, by module name
    labels = ["docker", "ps", "-aq", "--filter", f"label=org.edgevision.run={out.resolve()}"]
    assert subprocess.run(labels, capture_output=True, text=True, check=True).stdout.strip() == ""  # all removed


def _running_container(out: Path, module: str, run: subprocess.Popen[str], timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.poll() is None:
        state = out / "runtime.json"
        name = json.loads(state.read_text())["modules"][module]["container"] if state.is_file() else None
        inspect = ["docker", "inspect", "-f", "{{.State.Running}}", name or "-"]
        if name and subprocess.run(inspect, capture_output=True, text=True).stdout.strip() == "true":
            return name
        time.sleep(0.2)
    raise AssertionError(f"{module}'s container did not run within {timeout} s")


HEALTH_IMAGE = "edgevision-test-health:1"
# One tiny image, three behaviours by ROLE: `crash` exits 3 at once; `sick` runs on with a failing health check;
# `fine` runs on with a passing one. Built on the bookworm base the module images use (a local stand-in here).
HEALTH_DOCKERFILE = """FROM python:3.11.14-slim-bookworm
HEALTHCHECK --interval=1s --timeout=2s --retries=1 CMD ["sh", "-c", "test \\"$ROLE\\" != sick"]
CMD ["sh", "-c", "echo \\"role $ROLE\\"; if [ \\"$ROLE\\" = crash ]; then exit 3; fi; exec sleep infinity"]
"""


@pytest.fixture(scope="module")
def health_image(images) -> str:
    build = ["docker", "build", "--network", "none", "-q", "-t", HEALTH_IMAGE, "-"]
    subprocess.run(build, input=HEALTH_DOCKERFILE, text=True, capture_output=True, check=True, timeout=300)
    return HEALTH_IMAGE


def _health_module(role: str, restart: str) -> dict:
    return {
        "type": "docker",
        "status": "running",
        "restartPolicy": restart,
        "settings": {"image": HEALTH_IMAGE, "createOptions": {"HostConfig": {"Init": True}}},  # tini: SIGTERM ends it
        "env": {"ROLE": {"value": role}},
    }


@pytest.mark.slow
def test_containers_restart_when_they_exit_and_not_when_unhealthy_as_edgeagent(health_image, live_run) -> None:
    modules = {
        "crash": _health_module("crash", "on-failure"),
        "sick": _health_module("sick", "on-unhealthy"),
        "fine": _health_module("fine", "always"),
        "once": _health_module("crash", "never"),
    }
    run = live_run(deployment_manifest(modules, {}), containers=True)
    sick_container = run.state()["modules"]["sick"]["container"]
    started = ["docker", "inspect", "-f", "{{.Id}} {{.State.StartedAt}}", sick_container]
    first = wait_until(lambda: subprocess.run(started, capture_output=True, text=True).stdout.strip(), 30, "sick")

    def settled():
        state = run.state()["modules"]
        return state["sick"]["health"] == "unhealthy" and state["crash"]["restarts"] >= 2 and state

    state = wait_until(settled, 120, "the sick container unhealthy and the crashing one restarted twice")
    # Exits drive restarts, by restartPolicy: on-failure restarts a container that exits 3, never does not.
    # (its exitCode in runtime.json is None again while a restarted container runs: the console says each exit)
    assert "crash exited with 3: restarting" in run.console
    assert state["once"]["restarts"] == 0 and state["once"]["status"] == "exited"
    assert "once exited with 3 (restartPolicy never: not restarted)" in run.console
    # Docker's health status is reported, not acted on: the unhealthy container is the same one, still running.
    assert state["sick"]["restarts"] == 0 and state["sick"]["status"] == "running"
    assert subprocess.run(started, capture_output=True, text=True).stdout.strip() == first
    assert "sick: Docker reports its container unhealthy" in run.console
    assert wait_until(lambda: run.state()["modules"]["fine"]["health"] == "healthy", 30, "the fine one healthy")
    assert run.state()["modules"]["fine"]["restarts"] == 0


def test_check_with_containers_names_each_missing_image_and_the_command_that_gets_it(tmp_path: Path) -> None:
    reason = docker_ready()
    if reason:
        pytest.skip(reason)
    # A project of its own beside the manifest: its module.json names an image no engine has.
    module_json = json.loads((ROOT / "modules" / "CameraCapture" / "module.json").read_text())
    module_json["image"]["repository"] = "${CONTAINER_REGISTRY_ADDRESS}/edgevision-never-built"
    (tmp_path / "modules" / "NeverBuilt").mkdir(parents=True)
    (tmp_path / "modules" / "NeverBuilt" / "module.json").write_text(json.dumps(module_json))
    built = _health_module("fine", "always")
    missing = {**built, "settings": {"image": "${MODULES.NeverBuilt}", "createOptions": {}}}
    debug = {**built, "settings": {"image": "${MODULES.NeverBuilt.debug}", "createOptions": {}}}
    foreign = {**built, "settings": {"image": "registry.invalid/absent:1", "createOptions": {}}}
    path = tmp_path / "deployment.json"
    path.write_text(deployment_manifest({"missing": missing, "debug": debug, "foreign": foreign}, {}))
    command = [sys.executable, "-m", "edgevision", "run", "--check", "--containers", "--platform", "amd64", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr  # the CLI's code for a one-line error
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    tag = f"edgevision-never-built:{module_json['image']['tag']['version']}-amd64"
    assert (
        f"module missing: image {tag} is not on this engine (build it: scripts/images.sh build amd64 NeverBuilt)"
        in lines[0]
    )
    assert (
        f"module debug: image {tag}.debug is not on this engine"
        f" (build it: docker build -f modules/NeverBuilt/Dockerfile.amd64.debug -t {tag}.debug .)" in lines[0]
    )
    assert "module foreign: image registry.invalid/absent:1 is not on this engine (docker pull" in lines[0]


@pytest.mark.slow
def test_check_with_containers_passes_when_the_engine_has_every_image(health_image, tmp_path: Path) -> None:
    path = tmp_path / "deployment.json"
    path.write_text(deployment_manifest({"fine": _health_module("fine", "always")}, {}))
    command = [sys.executable, "-m", "edgevision", "run", "--check", "--containers", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("OK: 1 modules (fine), 0 routes; 1 images on this engine")
