#!/usr/bin/env bash
# The arm module images built on an x86 machine under emulation, each checked in a short real run.
#   scripts/images-arm.sh [arm64v8|arm32v7] [--all | FOLDER...]
#       register qemu-aarch64 (arm64v8, the default) or qemu-arm (arm32v7) with binfmt_misc, build that
#       platform's images of the module folders named (default: ImageClassifierService; --all: the four) with
#       scripts/images.sh (debootstrap --arch arm64 / armhf stand-in base), then run each in a container of its
#       own (--network host: loopback only) and check its `uname -m`, its non-root uid and what it does:
#         ImageClassifierService  scores the zebra photo like the amd64 image (same top tag, probabilities within 1e-3)
#         CameraCapture           reads a bind-mounted 4-frame clip of two demo photos (dog, zebra), posts each frame
#                                 to the arm scorer container: one output1 message per frame, the zebra frames kept
#         SenseHatDisplay         renders its idle PNG into a mounted folder, then the arm scorer's answer for the
#                                 zebra photo, as a message body, as the zebra icon
#         CustomVisionPortal      answers /health, refuses the Training API without its key, and trains, publishes
#                                 and predicts a 3-tag project of 15 aerial tiles through the Custom Vision SDK
#       The camera and display checks start the platform's scorer image too (built with them).
#   scripts/images-arm.sh --register aarch64|arm   only the binfmt_misc registration
# Slow (the base's second stage, apt, pip and the model all run under qemu): minutes to tens of minutes per image
# on 2 cores (docs/benchmarks.md), so it is a script of its own and not part of the test suite or CI. Needs root
# (binfmt_misc) and Debian's qemu-user-static (scripts/docker.sh installs it), and the dev venv (.venv: the
# slideshow maker and the Custom Vision SDK). arm32v7 is Debian trixie armhf with Debian's own numpy, Pillow,
# OpenCV and onnxruntime (PyPI has no armv7 wheels; docs/deploy.md).
set -euo pipefail
cd "$(dirname "$0")/.."
SCORER=ImageClassifierService

log() { echo "images-arm.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# qemu-user-static ships its binfmt_misc entries in /usr/lib/binfmt.d; systemd-binfmt registers them at boot,
# which a machine without systemd never does. The F flag opens the interpreter now, so it also runs inside
# chroots and containers that do not have it.
register() {
  local arch=$1 conf=/usr/lib/binfmt.d/qemu-$1.conf
  [ -d /proc/sys/fs/binfmt_misc ] || die "no binfmt_misc in this kernel"
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    log "mounting binfmt_misc"
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  if [ -e "/proc/sys/fs/binfmt_misc/qemu-$arch" ]; then log "qemu-$arch: registered"; return; fi
  [ -f "$conf" ] || die "$conf is missing: run scripts/docker.sh (installs qemu-user-static)"
  cat "$conf" >/proc/sys/fs/binfmt_misc/register
  log "qemu-$arch: registered from $conf"
}

if [ "${1:-}" = --register ]; then register "${2:-aarch64}"; exit; fi
PLATFORM=arm64v8
case "${1:-}" in arm64v8|arm32v7) PLATFORM=$1; shift ;; -*|"") ;; *) die "unknown platform '$1' (arm64v8 or arm32v7)" ;; esac
case "$PLATFORM" in
  arm64v8) qemu=aarch64 docker_platform=linux/arm64 ;;
  arm32v7) qemu=arm docker_platform=linux/arm/v7 ;;
esac
folders=("$SCORER")
if [ "${1:-}" = --all ]; then
  folders=("$SCORER" CameraCapture SenseHatDisplay CustomVisionPortal)
elif [ $# -gt 0 ]; then
  for folder in "$@"; do [ -f "modules/$folder/module.json" ] || die "no module folder modules/$folder"; done
  folders=("$@")
fi
# the camera posts to the platform's scorer and the display shows its answer: built (and run) with them
build=("${folders[@]}")
case " ${folders[*]} " in
  *" $SCORER "*) ;;
  *" CameraCapture "*|*" SenseHatDisplay "*) build=("$SCORER" "${folders[@]}") ;;
esac
[ "$(id -u)" -eq 0 ] || die "run as root (binfmt_misc registration)"
scripts/docker.sh
register "$qemu"
scripts/images.sh build "$PLATFORM" "${build[@]}"  # logs each image's build time and size
case " ${folders[*]} " in *" $SCORER "*) scripts/images.sh build amd64 "$SCORER" ;; esac

# QEMU 7.2 (Debian 12) does not emulate /proc/cpuinfo for arm or aarch64: a container reads the host's x86 one.
# arm64v8: PyPI's onnxruntime then finds no ARM core in it (pytorch/cpuinfo) and crashes (SIGSEGV at import,
# then the process hangs), so a Raspberry Pi 4's /proc/cpuinfo (2 x Cortex-A72) is mounted in its place in every
# arm64v8 container checked; on a real arm64 device the kernel's own is there and nothing is mounted. arm32v7:
# Debian's onnxruntime 1.21 (armhf) starts and scores with the host's file, so nothing is mounted.
cpuinfo=""
if [ "$PLATFORM" = arm64v8 ]; then
  cpuinfo=.images-cache/cpuinfo-aarch64
  for n in 0 1; do
    printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n' "$n"
    printf 'CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n'
  done >"$cpuinfo"
  printf 'Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n' >>"$cpuinfo"
fi

python=.venv/bin/python; [ -x "$python" ] || python=python3
exec "$python" - "$PLATFORM" "$docker_platform" "$cpuinfo" "${folders[@]}" <<'EOF'
import contextlib, json, os, re, socket, subprocess, sys, tempfile, time, urllib.error, urllib.request
from pathlib import Path

platform, docker_platform, cpuinfo, *folders = sys.argv[1:]
ARCH = {"arm64v8": "aarch64", "arm32v7": "armv7l"}[platform]
MOUNTS = ["-v", f"{Path(cpuinfo).resolve()}:/proc/cpuinfo:ro"] if cpuinfo else []
PHOTOS = Path("edgevision/demo/media/photos")
ZEBRA, DOG = PHOTOS / "wildlife-wildbook/2014_000006.jpg", PHOTOS / "darknet/dog.jpg"
KEYS = {"TRAINING_KEY": "arm-check-training-key", "PREDICTION_KEY": "arm-check-prediction-key"}


class Failed(Exception):
    pass


def docker(*args, **kwargs):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, **kwargs).stdout.strip()


def tag(folder, for_platform=platform):
    return subprocess.run(["scripts/images.sh", "tag", folder, for_platform], capture_output=True, text=True,
                          check=True).stdout.strip()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def container(folder, *args, env, for_platform=platform):
    """A detached container of the folder's image, the platform's cpuinfo stand-in mounted; removed after."""
    image, name = tag(folder, for_platform), f"edgevision-arm-check-{folder.lower()}-{os.getpid()}-{free_port()}"
    arm = [] if for_platform == "amd64" else ["--platform", docker_platform, *MOUNTS]
    environment = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    docker("run", "-d", "--name", name, "--network", "host", *arm, *args, *environment, image)
    try:
        yield name
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def identity(name, arch=ARCH):
    """The running container's machine and uid, as `uname -m` and `id -u` inside it say."""
    machine, uid = docker("exec", name, "sh", "-c", "uname -m; id -u").split()
    print(f"  {name}: uname -m {machine}, uid {uid}", flush=True)
    if machine != arch or uid == "0":
        raise Failed(f"{name} runs as {machine}, uid {uid} (wanted {arch}, not root)")


def wait_http(url, timeout=600):  # the model loads under emulation
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise Failed(f"{url} did not answer within {timeout} s") from None
            time.sleep(2)


def score(url, photo=ZEBRA):
    request = urllib.request.Request(f"{url}/image", data=photo.read_bytes(),
                                     headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.load(response)


@contextlib.contextmanager
def scorer(for_platform=platform):
    port = free_port()
    with container("ImageClassifierService", env={"HOST": "127.0.0.1", "PORT": port}, for_platform=for_platform) as name:
        wait_http(f"http://127.0.0.1:{port}/health")
        identity(name, ARCH if for_platform == platform else "x86_64")
        yield f"http://127.0.0.1:{port}"


def check_scorer(arm_url):
    with scorer("amd64") as url:
        native = {p["tagName"]: p["probability"] for p in score(url)["predictions"]}
    started = time.monotonic()
    emulated = {p["tagName"]: p["probability"] for p in score(arm_url)["predictions"]}
    print(f"  the zebra photo in {time.monotonic() - started:.2f} s under emulation", flush=True)
    native_top, emulated_top = max(native, key=native.get), max(emulated, key=emulated.get)
    worst = max(abs(native[t] - emulated.get(t, 2.0)) for t in native)
    print(f"  top tag: amd64 {native_top} {native[native_top]:.6f}, {platform} {emulated_top} "
          f"{emulated[emulated_top]:.6f}; largest probability difference over {len(native)} tags: {worst:.2e}")
    if native_top != emulated_top or worst > 1e-3 or native.keys() != emulated.keys():
        raise Failed(f"the {platform} scorer image does not score like the amd64 image")


def check_camera(scorer_url):
    from edgevision.demo.slideshow import make_slideshow

    with tempfile.TemporaryDirectory() as tmp:
        media, captures = Path(tmp, "media"), Path(tmp, "captures")
        clip = make_slideshow([DOG, ZEBRA], media / "clip.avi", fps=2.0, seconds_each=1.0)
        captures.mkdir()
        captures.chmod(0o777)  # the container's uid 10001 writes here
        env = {"VIDEO_PATH": "/media/clip.avi", "LOOP_VIDEO": "false", "IMAGE_PROCESSING_ENDPOINT": f"{scorer_url}/image",
               "SEND_MODE": "every", "MIN_SEND_INTERVAL": "0", "CAPTURE_TAGS": "zebra", "CAPTURE_COOLDOWN": "0"}
        volumes = ["-v", f"{media}:/media:ro", "-v", f"{captures}:/data/captures"]
        with container("CameraCapture", *volumes, env=env) as name:
            identity(name)  # it runs for seconds at least: Python and OpenCV start under emulation
            code = docker("wait", name, timeout=900)  # the clip ends and the module exits (LOOP_VIDEO=false)
            logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
        output = logs.stdout + logs.stderr
        tags = [m[1] for line in output.splitlines() if "-> output1" in line and (m := re.search(r"'topTag': '([^']*)'", line))]
        kept = sorted(captures.rglob("*.jpg"))
        sidecars = [json.loads(p.read_text()) for p in captures.rglob("*.json")]
        print(f"  exit {code}; {len(tags)} output1 messages for {clip.frame_count} frames, top tags {tags}; "
              f"{len(kept)} frames kept", flush=True)
        if code != "0" or len(tags) != clip.frame_count or tags[-2:] != ["zebra", "zebra"] or tags[0] == "zebra":
            raise Failed(f"the camera did not score the clip with the scorer container:\n{output[-3000:]}")
        if not sidecars or {s["matchedTag"] for s in sidecars} != {"zebra"} or any(p.stat().st_uid != 10001 for p in kept):
            raise Failed(f"the camera did not keep the zebra frames as uid 10001: {kept} {sidecars}")


# The module's own display code in its container (no IoT Edge here to deliver input1): one message body.
SHOW = """import json, sys
from edgevision.display.backends import open_outputs
from edgevision.display.module import Display
from edgevision.display.settings import DisplaySettings
settings = DisplaySettings.from_env()
print(Display(settings, open_outputs(settings)[1]).receive(json.load(sys.stdin)).describe())"""


def check_display(scorer_url):
    answer = score(scorer_url)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        out.chmod(0o777)  # the container's uid 10001 writes here
        env = {"DISPLAY_BACKEND": "render", "RENDER_DIR": "/data/display"}
        with container("SenseHatDisplay", "-v", f"{out}:/data/display", env=env) as name:
            identity(name)
            deadline = time.monotonic() + 300
            while not (out / "current.json").exists():
                if time.monotonic() > deadline:
                    raise Failed(f"no frame in 300 s:\n{docker('logs', name)}")
                time.sleep(1)
            idle = json.loads((out / "current.json").read_text())
            shown = docker("exec", "-i", name, "python", "-c", SHOW, input=json.dumps(answer)).splitlines()[-1]
        current = json.loads((out / "current.json").read_text())
        png = out / "current.png"
        print(f"  idle frame: {idle['kind']}; the scorer's answer: {shown}; current.png owned by {png.stat().st_uid}")
        if current["tag"] != "zebra" or png.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n" or png.stat().st_uid != 10001:
            raise Failed(f"the display did not render the zebra as uid 10001: {current}")


def check_portal(_):
    from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
    from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient, models
    from msrest.authentication import ApiKeyCredentials

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with container("CustomVisionPortal", "--init", env={"PORTAL_HOST": "127.0.0.1", "PORTAL_PORT": port, **KEYS}) as name:
        wait_http(f"{url}/health")
        identity(name)
        try:
            urllib.request.urlopen(f"{url}/customvision/v3.3/training/projects", timeout=30)
            raise Failed("the Training API answered without its key")
        except urllib.error.HTTPError as exc:
            if exc.code != 401:
                raise Failed(f"without its key the Training API said {exc.code}, not 401") from None
        trainer = CustomVisionTrainingClient(url, ApiKeyCredentials(in_headers={"Training-key": KEYS["TRAINING_KEY"]}))
        compact = next(d for d in trainer.get_domains() if d.name == "General (compact)")
        project = trainer.create_project("arm check", domain_id=compact.id)
        folders = sorted(p for p in Path("tests/data/aerial-mini").iterdir() if p.is_dir())
        tiles = {f.name: sorted(f.glob("*"))[:6] for f in folders}  # 5 to train on (the least), the 6th held out
        tags = {name: trainer.create_tag(project.id, name).id for name in tiles}
        entries = [models.ImageFileCreateEntry(name=p.name, contents=p.read_bytes(), tag_ids=[tags[t]])
                   for t, paths in tiles.items() for p in paths[:5]]
        assert trainer.create_images_from_files(project.id, models.ImageFileCreateBatch(images=entries)).is_batch_successful
        started = time.monotonic()
        iteration = trainer.train_project(project.id)
        while (iteration := trainer.get_iteration(project.id, iteration.id)).status == "Training":
            if time.monotonic() - started > 900:
                raise Failed("training 15 tiles took more than 900 s")
            time.sleep(5)
        print(f"  trained {len(entries)} tiles: {iteration.status} in {time.monotonic() - started:.0f} s", flush=True)
        if iteration.status != "Completed":
            raise Failed(f"training failed: {iteration.training_error_details}")
        trainer.publish_iteration(project.id, iteration.id, "arm", "resource-id")
        predictor = CustomVisionPredictionClient(url, ApiKeyCredentials(in_headers={"Prediction-key": KEYS["PREDICTION_KEY"]}))
        answers = {t: predictor.classify_image(project.id, "arm", p[5].read_bytes()).predictions[0].tag_name
                   for t, p in tiles.items()}
        print(f"  held-out tiles (tag -> predicted): {answers}")
        if sum(t == a for t, a in answers.items()) < len(answers) - 1:
            raise Failed(f"the trained model got more than one of {len(answers)} held-out tiles wrong")


CHECKS = {"ImageClassifierService": check_scorer, "CameraCapture": check_camera, "SenseHatDisplay": check_display,
          "CustomVisionPortal": check_portal}
failed = []
with contextlib.ExitStack() as stack:
    scorer_url = None
    if {"ImageClassifierService", "CameraCapture", "SenseHatDisplay"} & set(folders):
        print(f"{tag('ImageClassifierService')}: started for the checks", flush=True)
        scorer_url = stack.enter_context(scorer())
    for folder in folders:
        print(f"{tag(folder)}:", flush=True)
        started = time.monotonic()
        try:
            CHECKS[folder](scorer_url)
            print(f"  checked in {time.monotonic() - started:.0f} s", flush=True)
        except Exception as exc:  # noqa: BLE001 - each check reports and the next one runs
            detail = getattr(exc, "stderr", "") or ""
            print(f"  FAILED: {exc} {detail}".rstrip(), flush=True)
            failed.append(folder)
if failed:
    raise SystemExit(f"images-arm.sh: {platform}: failed: {', '.join(failed)}")
print(f"images-arm.sh: {platform}: {', '.join(folders)} checked")
EOF
