"""The ranger's data, off the device: kept frames as a Camera Trap Data Package, and the interactions report.

A tool, not an IoT Edge module: it reads what CameraCapture stored (JPEGs and their `CaptureSidecar` JSON,
the contract in edgevision/contracts.py) or any Camtrap DP package, and never imports the camera's code.

- `edgevision captures export CAPTURE_DIR --format camtrap-dp --out DIR`: a Camtrap DP 1.0.2 package;
- `edgevision captures report SOURCE --out DIR`: report.html with PNG plots and the counts as CSV;
- `edgevision captures validate PACKAGE`: the package against the Camtrap DP profile and schemas, offline.

See docs/captures.md.
"""
