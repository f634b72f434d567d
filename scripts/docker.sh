#!/usr/bin/env bash
# A local Docker engine for building and running the module images (issue 15), started only when missing.
#   scripts/docker.sh          install docker.io, debootstrap, qemu-user-static if missing; start dockerd
#   scripts/docker.sh --check  exit 0 if the engine answers, 1 if not (no install, no start)
# The engine runs with no bridge network and no iptables rules: images are built and run with
# --network host (or none), so every packet stays on this machine's own interfaces. Container registries
# are not reachable here: base images are local stand-ins (scripts/images.sh base).
# Log: .images-cache/dockerd.log (the folder is ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=.images-cache
mkdir -p "$cache"

engine_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if [ "${1:-}" = --check ]; then engine_up; exit; fi
engine_up && exit 0

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
packages=()
have dockerd || packages+=(docker.io)
have debootstrap || packages+=(debootstrap)
have qemu-aarch64-static || packages+=(qemu-user-static)
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ ${#packages[@]} -gt 0 ]; then
  echo "docker.sh: installing ${packages[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

if ! pgrep -x dockerd >/dev/null; then
  echo "docker.sh: starting dockerd (log: $cache/dockerd.log)"
  # setsid: the engine outlives this script and the shell that ran it
  $sudo setsid dockerd --bridge=none --iptables=false >>"$cache/dockerd.log" 2>&1 </dev/null &
fi
for _ in $(seq 1 60); do
  engine_up && exit 0
  sleep 1
done
echo "docker.sh: the engine did not answer within 60 s; see $cache/dockerd.log" >&2
exit 1
