#!/usr/bin/env bash
# Build the module images from the repository's own Dockerfiles (modules/<Name>/Dockerfile.<platform>).
#   scripts/images.sh build [amd64|arm64v8|arm32v7|all] [FOLDER...]   base stand-ins if missing, then the
#                                                   four images: the three modules of the solution and the
#                                                   optional portal (or only those of the module folders named)
#   scripts/images.sh base  [amd64|arm64v8|arm32v7|all]   only the base images
#   scripts/images.sh sizes [amd64|arm64v8|arm32v7|all]   the built images and their sizes
# Images: edgevision-<module-name>:<version>-<platform>, e.g. edgevision-image-classifier-service:0.1.0-amd64.
#
# Container registries are not reachable from this machine, so the base images the Dockerfiles name
# (python:3.11.14-slim-bookworm, ...) cannot be pulled. Where one is missing, a local stand-in is built under
# that name with debootstrap from the Debian release the real base uses (bookworm for the Python images,
# trixie for debian:13.2-slim), with Python in a venv at /usr/local where the real image has Python (so
# /usr/local/bin/python and pip exist as in the official image). Its root file system is cached in
# .images-cache/ (ignored by git), so a rebuild does not run debootstrap again.
# pip in the builds reaches PyPI through the machine's CA bundle ($PIP_CERT): it is copied to
# .images-cache/pip-cert.pem, which only the Dockerfiles' build stage sees (not the final image).
# The engine: scripts/docker.sh (no bridge, no iptables; builds use --network host).
# arm64v8 / arm32v7 build under qemu-user-static emulation (slow): see scripts/images-arm.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=.images-cache
mkdir -p "$cache"
MODULES=(ImageClassifierService CameraCapture SenseHatDisplay CustomVisionPortal)
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"

log() { echo "images.sh: $*" >&2; }
die() { log "$*"; exit 1; }

platforms() {
  case "${1:-amd64}" in
    amd64|arm64v8|arm32v7) echo "$1" ;;
    all) echo amd64 arm64v8 arm32v7 ;;
    *) die "unknown platform '$1' (amd64, arm64v8, arm32v7 or all)" ;;
  esac
}

# Debian's architecture and release for a platform's base image (the release the real base uses).
debian_arch() { case "$1" in amd64) echo amd64 ;; arm64v8) echo arm64 ;; arm32v7) echo armhf ;; esac; }
docker_platform() { case "$1" in amd64) echo linux/amd64 ;; arm64v8) echo linux/arm64 ;; arm32v7) echo linux/arm/v7 ;; esac; }
base_image() { sed -n 's/^FROM \([^ ]*\).*/\1/p' "modules/ImageClassifierService/Dockerfile.$1" | tail -n1; }
debian_release() {
  case "$1" in
    *bookworm*) echo bookworm ;;
    *debian:12*) echo bookworm ;;
    *debian:13*|*trixie*) echo trixie ;;
    *) die "no Debian release known for base image $1" ;;
  esac
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# A root file system for the stand-in, cached as a tarball: minbase + Python (venv at /usr/local) where the
# real base has Python; no apt lists, docs or man pages (as in the slim images).
rootfs_tarball() {
  local platform=$1 base=$2 arch release root tarball with_python=""
  arch=$(debian_arch "$platform")
  release=$(debian_release "$base")
  case "$base" in *python:*) with_python=1 ;; esac
  tarball="$cache/rootfs-$release-$arch${with_python:+-python}.tar"
  if [ -s "$tarball" ]; then echo "$tarball"; return; fi
  command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || die "debootstrap is missing: run scripts/docker.sh"
  root=$(mktemp -d "$PWD/$cache/rootfs.XXXXXX")
  log "debootstrap $release ($arch) for $base into $root (minutes; cached as $tarball)"
  local include=ca-certificates,netbase,tzdata
  [ -n "$with_python" ] && include=$include,python3,python3-venv
  $sudo debootstrap --variant=minbase --arch="$arch" --include="$include" "$release" "$root" "$MIRROR" \
    >"$cache/debootstrap-$release-$arch.log" 2>&1 || die "debootstrap failed: see $cache/debootstrap-$release-$arch.log"
  if [ -n "$with_python" ]; then
    # the official image's layout: `python`, `python3` and `pip` in /usr/local/bin, packages in /usr/local/lib
    $sudo chroot "$root" /usr/bin/python3 -m venv /usr/local
  fi
  $sudo rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log
  $sudo tar -C "$root" --numeric-owner -cf "$tarball.part" .
  $sudo rm -rf "$root"
  mv "$tarball.part" "$tarball"
  echo "$tarball"
}

# Docker's architecture and variant of a platform, as an image's config records them.
image_arch() { case "$1" in amd64) echo amd64 "" ;; arm64v8) echo arm64 v8 ;; arm32v7) echo arm v7 ;; esac; }

build_base() {
  local platform=$1 base tarball arch variant
  base=$(base_image "$platform")
  read -r arch variant <<<"$(image_arch "$platform")"
  if image_exists "$base"; then
    if [ "$(docker image inspect -f '{{.Architecture}}' "$base")" = "$arch" ]; then log "base $base: present"; return; fi
    log "base $base: present but not $arch (an earlier stand-in imported without its platform): replacing it"
    docker image rm -f "$base" >/dev/null
  fi
  log "base $base cannot be pulled here (no registry): building a local stand-in with debootstrap"
  tarball=$(rootfs_tarball "$platform" "$base")
  load_base "$base" "$tarball" "$arch" "$variant"
  log "base $base: stand-in loaded, $arch ($(docker image inspect -f '{{.Size}}' "$base" | numfmt --to=iec))"
}

# The root file system as a one-layer image in `docker save` form, loaded with `docker load`. Not `docker
# import`: its --platform needs an engine with experimental features (20.10 ignores it otherwise), and an
# arm64 root file system labelled amd64 would be refused on a Pi and not matched by --platform here.
load_base() {
  local base=$1 tarball=$2 arch=$3 variant=$4 dir digest cmd='["bash"]' now
  case "$base" in *python:*) cmd='["python3"]' ;; esac
  dir=$(mktemp -d "$PWD/$cache/load.XXXXXX")
  digest=$(sha256sum "$tarball" | cut -d' ' -f1)
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  ln -s "$PWD/$tarball" "$dir/layer.tar"
  printf '{"architecture":"%s",%s"os":"linux","created":"%s","config":{"Env":["PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin","LANG=C.UTF-8"],"Cmd":%s,"Labels":{"org.edgevision.stand-in":"debootstrap %s for %s"}},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"%s","created_by":"scripts/images.sh: debootstrap %s"}]}' \
    "$arch" "${variant:+\"variant\":\"$variant\",}" "$now" "$cmd" "$(debian_release "$base")" "$base" "$digest" "$now" \
    "$(debian_release "$base")" >"$dir/config.json"
  printf '[{"Config":"config.json","RepoTags":["%s"],"Layers":["layer.tar"]}]' "$base" >"$dir/manifest.json"
  tar -C "$dir" -ch manifest.json config.json layer.tar | docker load >/dev/null
  rm -rf "$dir"
}

version() { sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n1; }
module_name() { sed -n 's/.*"description": "\([a-z0-9-]*\):.*/\1/p' "modules/$1/module.json"; }
image_tag() { echo "edgevision-$(module_name "$1"):$(version)-$2"; }

build_module() {
  local folder=$1 platform=$2 tag start
  tag=$(image_tag "$folder" "$platform")
  start=$(date +%s)
  log "build $tag from modules/$folder/Dockerfile.$platform"
  # The legacy builder: the Dockerfiles build the same way with iotedgedev (docker-py) and it needs no
  # frontend image from a registry. Build and RUN steps use the host's network namespace, no bridge.
  DOCKER_BUILDKIT=0 docker build --network host -q -f "modules/$folder/Dockerfile.$platform" -t "$tag" . >/dev/null
  log "built $tag in $(($(date +%s) - start)) s, $(docker image inspect -f '{{.Size}}' "$tag" | numfmt --to=iec)"
}

pip_cert() {
  rm -f "$cache/pip-cert.pem"
  if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then cp "$PIP_CERT" "$cache/pip-cert.pem"; fi
}

sizes() {
  local platform folder
  for platform in "$@"; do
    for folder in "${MODULES[@]}"; do
      tag=$(image_tag "$folder" "$platform")
      if image_exists "$tag"; then
        printf '%-52s %s\n' "$tag" "$(docker image inspect -f '{{.Size}}' "$tag" | numfmt --to=iec)"
      else
        printf '%-52s %s\n' "$tag" "not built"
      fi
    done
  done
}

command=${1:-}
shift || true
if [ "$command" = tag ]; then image_tag "$1" "${2:-amd64}"; exit; fi  # tag FOLDER [PLATFORM]: the image's name
read -r -a selected <<<"$(platforms "${1:-amd64}")"
shift || true
folders=("${MODULES[@]}")
if [ $# -gt 0 ]; then
  for folder in "$@"; do [ -f "modules/$folder/module.json" ] || die "no module folder modules/$folder"; done
  folders=("$@")
fi
case "$command" in
  base|build)
    scripts/docker.sh
    for platform in "${selected[@]}"; do build_base "$platform"; done
    if [ "$command" = build ]; then
      pip_cert
      for platform in "${selected[@]}"; do
        for folder in "${folders[@]}"; do build_module "$folder" "$platform"; done
      done
      sizes "${selected[@]}"
    fi
    ;;
  sizes) sizes "${selected[@]}" ;;

  *) echo "usage: $0 build|base|sizes [amd64|arm64v8|arm32v7|all] [FOLDER...]" >&2; exit 2 ;;
esac
