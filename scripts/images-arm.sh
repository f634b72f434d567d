#!/usr/bin/env bash
# The arm scorer images built on an x86 machine under emulation, and checked against the amd64 one.
#   scripts/images-arm.sh [arm64v8|arm32v7]   register qemu-aarch64 (arm64v8, the default) or qemu-arm (arm32v7)
#                                    with binfmt_misc, build that platform's scorer image with scripts/images.sh
#                                    (debootstrap --arch arm64 / armhf stand-in base), then score one real photo
#                                    with it and with the amd64 image: same top tag, probabilities within 1e-3
#   scripts/images-arm.sh --register aarch64|arm   only the binfmt_misc registration
# Slow (the base's second stage, apt, pip and the model all run under qemu): tens of minutes on 2 cores, so it is
# a script of its own and not part of the test suite or CI. Needs root (binfmt_misc) and Debian's
# qemu-user-static (scripts/docker.sh installs it). arm32v7 is Debian trixie armhf with Debian's own
# python3-onnxruntime (PyPI has no armv7 wheels; docs/deploy.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PHOTO=edgevision/demo/media/photos/wildlife-wildbook/2014_000006.jpg  # the zebra
FOLDER=ImageClassifierService

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
PLATFORM=${1:-arm64v8}
case "$PLATFORM" in
  arm64v8) qemu=aarch64 docker_platform=linux/arm64 ;;
  arm32v7) qemu=arm docker_platform=linux/arm/v7 ;;
  *) die "unknown platform '$PLATFORM' (arm64v8 or arm32v7)" ;;
esac
[ "$(id -u)" -eq 0 ] || die "run as root (binfmt_misc registration)"
scripts/docker.sh
register "$qemu"
start=$(date +%s)
scripts/images.sh build "$PLATFORM" "$FOLDER"
log "$PLATFORM $FOLDER built in $(($(date +%s) - start)) s"
scripts/images.sh build amd64 "$FOLDER"

# QEMU 7.2 (Debian 12) does not emulate /proc/cpuinfo for arm or aarch64: a container reads the host's x86 one.
# arm64v8: PyPI's onnxruntime then finds no ARM core in it (pytorch/cpuinfo) and crashes (SIGSEGV at import,
# then the process hangs), so a Raspberry Pi 4's /proc/cpuinfo (2 x Cortex-A72) is mounted in its place for
# the check; on a real arm64 device the kernel's own is there and nothing is mounted. arm32v7: Debian's
# onnxruntime 1.21 (armhf) starts and scores with the host's file, so nothing is mounted.
mounts=()
if [ "$PLATFORM" = arm64v8 ]; then
  cpuinfo=.images-cache/cpuinfo-aarch64
  for n in 0 1; do
    printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n' "$n"
    printf 'CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n'
  done >"$cpuinfo"
  printf 'Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n' >>"$cpuinfo"
  mounts=(-v "$PWD/$cpuinfo:/proc/cpuinfo:ro")
fi

# Both images on free loopback ports (--network host: the engine has no bridge), the same photo to each.
python=.venv/bin/python; [ -x "$python" ] || python=python3
exec "$python" - "$(scripts/images.sh tag "$FOLDER" amd64)" "$(scripts/images.sh tag "$FOLDER" "$PLATFORM")" \
  "$PHOTO" "$PLATFORM" "$docker_platform" "${mounts[@]}" <<'EOF'
import json, os, socket, subprocess, sys, time, urllib.request

amd64, arm, photo, platform, docker_platform, *mounts = sys.argv[1:]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def score(image, platform, *mounts):
    port, name = free_port(), f"edgevision-arm-check-{platform.replace('/', '-')}-{os.getpid()}"
    run = ["docker", "run", "-d", "--rm", "--name", name, "--network", "host", "--platform", platform, *mounts]
    subprocess.run([*run, "-e", "HOST=127.0.0.1", "-e", f"PORT={port}", image], check=True, capture_output=True)
    try:
        deadline = time.monotonic() + 600  # the model loads under emulation
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{image} did not answer /health within 600 s")
                time.sleep(2)
        started = time.monotonic()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/image", data=open(photo, "rb").read(),
            headers={"Content-Type": "application/octet-stream"},
        )
        with urllib.request.urlopen(request, timeout=300) as response:
            body = json.load(response)
        arch = subprocess.run(["docker", "exec", name, "uname", "-m"], capture_output=True, text=True).stdout.strip()
        print(f"{image}: {arch}, one photo in {time.monotonic() - started:.2f} s", flush=True)
        return {p["tagName"]: p["probability"] for p in body["predictions"]}, body["predictions"][0]["tagName"]
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


native, native_top = score(amd64, "linux/amd64")
emulated, emulated_top = score(arm, docker_platform, *mounts)
common = native.keys() & emulated.keys()
worst = max(abs(native[t] - emulated[t]) for t in common)
print(f"top tag: amd64 {native_top} {native[native_top]:.6f}, {platform} {emulated_top} {emulated[emulated_top]:.6f}")
print(f"largest probability difference over {len(common)} tags: {worst:.2e}")
if native_top != emulated_top or worst > 1e-3 or len(common) != len(native):
    raise SystemExit(f"images-arm.sh: the {platform} image does not score like the amd64 image")
print(f"images-arm.sh: the {platform} scorer image scores like the amd64 image")
EOF
