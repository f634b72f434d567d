#!/usr/bin/env bash
# The demo: the whole IoT Edge solution on this machine, without Azure or Docker.
# The camera module reads a clip of the bundled photos, the scorer classifies each frame with the bundled
# model, the display module draws the top tag as Sense HAT LEDs (terminal + PNG), messages go through the
# manifest's routes to $upstream, and frames of the capture tags are kept. It ends by itself.
#   scripts/demo.sh [OUT_DIR]        (DEMO_DURATION=seconds caps the run; default 90)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh demo
out=${1:-edgevision-runs/demo-$(date +%Y%m%d-%H%M%S)}
exec .venv/bin/edgevision run --duration "${DEMO_DURATION:-90}" --out "$out"
