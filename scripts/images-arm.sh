#!/usr/bin/env bash
# The arm64v8 scorer image built on an x86 machine under emulation, and checked against the amd64 one.
#   scripts/images-arm.sh            register qemu-aarch64 with binfmt_misc, build the arm64v8 scorer image with
#                                    scripts/images.sh (debootstrap --arch arm64 stand-in base), then score one real
#                                    photo with it and with the amd64 image: same top tag, probabilities within 1e-3
# Slow (the base's second stage, pip and the model all run under qemu): tens of minutes on 2 cores, so it is a
# script of its own and not part of the test suite or CI. Needs root (binfmt_misc) and Debian's
# qemu-user-static (scripts/docker.sh installs it). The same path builds arm32v7 (`scripts/images.sh build
# arm32v7` once qemu-arm is registered: `scripts/images-arm.sh --register arm`), not checked here.
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
[ "$(id -u)" -eq 0 ] || die "run as root (binfmt_misc registration)"
scripts/docker.sh
register aarch64
start=$(date +%s)
scripts/images.sh build arm64v8 "$FOLDER"
log "arm64v8 $FOLDER built in $(($(date +%s) - start)) s"
scripts/images.sh build amd64 "$FOLDER"

# QEMU 7.2 (Debian 12) does not emulate /proc/cpuinfo for aarch64, so the container reads the host's x86 one,
# and onnxruntime's CPU detection (pytorch/cpuinfo) finds no ARM core and crashes (SIGSEGV at import, then the
# process hangs). A Raspberry Pi 4's /proc/cpuinfo (2 x Cortex-A72) is mounted in its place for the check;
# on a real arm64 device the kernel's own is there and nothing is mounted.
cpuinfo=.images-cache/cpuinfo-aarch64
for n in 0 1; do
  printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n' "$n"
  printf 'CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n'
done >"$cpuinfo"
printf 'Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n' >>"$cpuinfo"

# Both images on free loopback ports (--network host: the engine has no bridge), the same photo to each.
python=.venv/bin/python; [ -x "$python" ] || python=python3
exec "$python" - "$(scripts/images.sh tag "$FOLDER" amd64)" "$(scripts/images.sh tag "$FOLDER" arm64v8)" \
  "$PHOTO" "$PWD/$cpuinfo" <<'EOF'
import json, os, socket, subprocess, sys, time, urllib.request

amd64, arm64, photo, cpuinfo = sys.argv[1:5]


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


(native, native_top), (emulated, emulated_top) = score(amd64, "linux/amd64"), score(arm64, "linux/arm64", "-v", f"{cpuinfo}:/proc/cpuinfo:ro")
common = native.keys() & emulated.keys()
worst = max(abs(native[t] - emulated[t]) for t in common)
print(f"top tag: amd64 {native_top} {native[native_top]:.6f}, arm64v8 {emulated_top} {emulated[emulated_top]:.6f}")
print(f"largest probability difference over {len(common)} tags: {worst:.2e}")
if native_top != emulated_top or worst > 1e-3:
    raise SystemExit("images-arm.sh: the arm64v8 image does not score like the amd64 image")
print("images-arm.sh: the arm64v8 scorer image scores like the amd64 image")
EOF
