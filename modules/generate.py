"""Write every module's Dockerfiles and module.json from one table, so 18 Dockerfiles cannot drift apart.

    .venv/bin/python modules/generate.py          # rewrite modules/<Name>/Dockerfile.* and module.json (and the
                                                  # settings list at the end of .env.template)
    .venv/bin/python modules/generate.py --check  # exit 1 if a generated file differs (the tests run this)
    .venv/bin/python modules/generate.py --lock   # re-resolve the pinned versions from PyPI, then rewrite

Images (build context: the repository root):
- amd64 / arm64v8: the official slim Python image of that architecture; pip installs only the module's extra,
  at the versions pinned in `modules/<Name>/constraints.txt` (resolved by `--lock`).
- arm32v7: Debian 13 (armhf). PyPI has no armv7 wheels for onnxruntime, numpy, Pillow or OpenCV (and piwheels
  cannot build onnxruntime, which publishes no source distribution), so those come from Debian's archive and
  pip adds only the pure-Python rest, at the same pins, into a venv that sees Debian's packages.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

MODULES_DIR = Path(__file__).resolve().parent
ROOT = MODULES_DIR.parent

PYTHON_TAG = "3.11.14-slim-bookworm"
BASES = {
    "amd64": f"python:{PYTHON_TAG}",
    "arm64v8": f"arm64v8/python:{PYTHON_TAG}",
    "arm32v7": "arm32v7/debian:13.2-slim",
}
PLATFORMS = ("amd64", "arm32v7", "arm64v8")
DEBUGPY = "debugpy==1.8.22"
DEBUG_PORT = 5678
UID = 10001

# Native packages Debian provides on armhf (and the PyPI distributions they stand for).
DEBIAN_PACKAGES = {
    "python3-numpy": ["numpy"],
    "python3-pil": ["pillow"],
    # onnxruntime's own dependencies come with it from Debian too: pip must not shadow them
    "python3-onnxruntime": ["onnxruntime", "flatbuffers", "protobuf", "coloredlogs", "sympy"],
    "python3-pydantic": ["pydantic", "pydantic-core", "annotated-types", "typing-extensions", "typing-inspection"],
    "python3-opencv": ["opencv-python-headless"],
    "python3-cryptography": ["cryptography", "cffi", "pycparser"],  # azure-storage-blob signs requests with it
    # the portal's trainer: ONNX graphs and the report's charts
    "python3-onnx": ["onnx", "ml-dtypes"],
    "python3-matplotlib": [
        "matplotlib",
        "contourpy",
        "kiwisolver",
        "fonttools",
        "cycler",
        "pyparsing",
        "python-dateutil",
        "six",
    ],
}


@dataclass(frozen=True)
class Module:
    folder: str  # modules/<folder>, `${MODULES.<folder>}` in the templates
    name: str  # the module's name in the deployment (and its image repository)
    command: str  # `edgevision <command>`
    extra: str  # pyproject extra installed in the image
    summary: str
    extra_amd64: str | None = None  # a different extra for amd64 (the display's emulator)
    debian: tuple[str, ...] = ("python3-numpy", "python3-pil", "python3-onnxruntime", "python3-pydantic")
    imports: str = ""  # checked at build time on arm32v7, where pip does not resolve dependencies
    groups: tuple[str, ...] = ()  # supplementary groups of the module's user (device access)
    ports: tuple[int, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    data_dirs: tuple[str, ...] = ()  # writable by the module's user (named volumes inherit the ownership)
    healthcheck: str = ""  # Python code run by HEALTHCHECK; an exception = unhealthy
    trains: bool = False  # keeps the trainer's feature extractor (edgevision/models/default/backbone.onnx)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def extra_for(self, platform: str) -> str:
        return self.extra_amd64 if platform == "amd64" and self.extra_amd64 else self.extra


# Health probes use only the standard library: no curl in slim images.
SCORER_HEALTH = (
    "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '80'), timeout=4)"
)
VIEWER_HEALTH = (  # only while the viewer is on: SHOW_VIDEO off is healthy too
    "import os, urllib.request as u;"
    " on = os.environ.get('SHOW_VIDEO', '').strip().lower() in ('1', 'true', 'yes', 'on');"
    " on and u.urlopen('http://127.0.0.1:%s/api/status' % os.environ.get('VIEWER_PORT', '5012'), timeout=4)"
)

PORTAL_HEALTH = (
    "import os, urllib.request as u;"
    " u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORTAL_PORT', '8080'), timeout=4)"
)

MODULES = (
    Module(
        folder="ImageClassifierService",
        name="image-classifier-service",
        command="serve",
        extra="classifier",
        summary="the scoring service (Custom Vision export container API) on port 80",
        imports="edgevision.classifier.server, onnxruntime, flask, waitress, prometheus_client",
        ports=(80,),
        healthcheck=SCORER_HEALTH,
        notes=(
            "Port 80 as a non-root user: Docker (20.10+) sets net.ipv4.ip_unprivileged_port_start=0 in a",
            "container's own network namespace, so no capability is needed (set PORT to >= 1024 on older engines).",
        ),
    ),
    Module(
        folder="CameraCapture",
        name="camera-capture",
        command="capture",
        extra="capture",
        summary="frames from a camera, file or stream, scored, reported, and the ones that matter kept",
        # the camera never scores in-process (it POSTs to the scorer): no onnxruntime or Pillow on arm32v7
        debian=("python3-numpy", "python3-pydantic", "python3-opencv", "python3-cryptography"),
        imports="edgevision.capture.cli, cv2, azure.iot.device, azure.storage.blob, flask, waitress, requests",
        groups=("video",),
        ports=(5012,),
        env=(("CAPTURE_DIR", "/data/captures"),),
        data_dirs=("/data/captures",),
        healthcheck=VIEWER_HEALTH,
        notes=("/dev/video* belong to group video (gid 44 on Debian and Raspberry Pi OS alike).",),
    ),
    Module(
        folder="SenseHatDisplay",
        name="sensehat-display",
        command="display",
        extra="display",
        extra_amd64="display-emulator",
        summary="the top tag as an icon on the Sense HAT LEDs (emulator or PNG/terminal renderer on amd64)",
        # the display never scores, so the arm32v7 image leaves out onnxruntime (pip does not resolve there)
        debian=("python3-numpy", "python3-pil", "python3-pydantic"),
        imports="edgevision.display.cli, azure.iot.device, numpy",
        groups=("video",),
        data_dirs=("/data/display",),  # RENDER_DIR when the renderer backend writes PNG frames
        notes=(
            "The LEDs are driven through the Sense HAT framebuffer (/dev/fbN, group video), mapped by the",
            "deployment; no privileged container and no root needed.",
        ),
    ),
    Module(
        folder="CustomVisionPortal",
        name="custom-vision-portal",
        command="portal",
        extra="portal",
        summary="Custom Vision's Training and Prediction APIs on the device (optional; deployed stopped)",
        debian=(
            "python3-numpy",
            "python3-pil",
            "python3-onnxruntime",
            "python3-pydantic",
            "python3-onnx",
            "python3-matplotlib",
        ),
        imports="edgevision.portal.server, edgevision.train.trainer, onnxruntime, onnx, flask, waitress, matplotlib",
        ports=(8080,),
        env=(("PORTAL_DATA_DIR", "/data/portal"), ("PORTAL_HOST", "0.0.0.0")),
        data_dirs=("/data/portal",),
        healthcheck=PORTAL_HEALTH,
        trains=True,
        notes=("Trains on the CPU with onnxruntime; the fine-tuning extra is left out of the image.",),
    ),
)


# -- pins ------------------------------------------------------------------------------------------------------


def project_version() -> str:
    # the [project] table's version line (tomllib would need Python 3.11)
    return re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(1)


def normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def read_pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[normalize(name)] = version.strip()
    return pins


def lock(module: Module, extra: str) -> dict[str, str]:
    """What pip resolves for `.[extra]` today (from PyPI), without our own package."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        pip = [sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed"]
        subprocess.run(
            [*pip, "--report", str(report), f"{ROOT}[{extra}]"],
            check=True,
            capture_output=True,  # the build backend's deprecation chatter; errors still raise
        )
        installs = json.loads(report.read_text())["install"]
    pins = {normalize(i["metadata"]["name"]): i["metadata"]["version"] for i in installs}
    pins.pop("edgevision", None)
    return pins


def write_lock(module: Module) -> None:
    pins: dict[str, str] = {}
    for extra in {module.extra, module.extra_for("amd64")}:
        pins.update(lock(module, extra))
    lines = [
        f"# Versions pinned in the {module.folder} images (all extras they install), resolved by",
        "# `python modules/generate.py --lock`. Used as a pip constraints file.",
        *(f"{name}=={version}" for name, version in sorted(pins.items())),
    ]
    (MODULES_DIR / module.folder).mkdir(exist_ok=True)
    (MODULES_DIR / module.folder / "constraints.txt").write_text("\n".join(lines) + "\n")


def pure_python_pins(module: Module) -> list[str]:
    """The pins pip installs on arm32v7: never a native package (a module that does not take one from Debian,
    like the display and onnxruntime, does not import it: the build's import check proves it)."""
    debian = {normalize(n) for names in DEBIAN_PACKAGES.values() for n in names}
    pins = read_pins(MODULES_DIR / module.folder / "constraints.txt")
    extra_only = {"sense-emu"}  # the emulator is for amd64 only
    return [f"{n}=={v}" for n, v in sorted(pins.items()) if n not in debian and n not in extra_only]


# -- files -----------------------------------------------------------------------------------------------------


def header(module: Module, platform: str, debug: bool) -> list[str]:
    suffix = ".debug" if debug else ""
    return [
        "# syntax=docker/dockerfile:1",
        f"# {module.folder} ({module.name}) for {platform}{' with debugpy' if debug else ''}: {module.summary}.",
        "# Generated by modules/generate.py from its table: edit there, then run it. Build context = repo root:",
        f"#   docker build -f modules/{module.folder}/Dockerfile.{platform}{suffix} -t {module.name} .",
    ]


def user_lines(module: Module) -> list[str]:
    groups = f" --groups {','.join(module.groups)}" if module.groups else ""
    mkdirs = "".join(f" \\\n    && mkdir -p {d} && chown {UID}:{UID} {d}" for d in module.data_dirs)
    return [
        "# A fixed, unprivileged uid"
        + (f"; group {', '.join(module.groups)} opens the mapped devices." if module.groups else "."),
        f"RUN useradd --system --uid {UID} --user-group{groups} --create-home --home-dir /home/edgevision"
        f" --shell /usr/sbin/nologin edgevision{mkdirs}",
    ]


def tail_lines(module: Module, debug: bool, python: str) -> list[str]:
    lines = [f"COPY modules/{module.folder}/main.py /app/main.py", "WORKDIR /app"]
    for note in module.notes:
        lines.append(f"# {note}")
    lines.append(f"USER {UID}")
    ports = [*module.ports, *([DEBUG_PORT] if debug else [])]
    if ports:
        lines.append("EXPOSE " + " ".join(str(p) for p in ports))
    if module.healthcheck:
        probe = json.dumps([python, "-c", module.healthcheck])
        lines.append(f"HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD {probe}")
    if debug:
        lines.append(f'CMD ["{python}", "-m", "debugpy", "--listen", "0.0.0.0:{DEBUG_PORT}", "/app/main.py"]')
    else:
        lines.append(f'CMD ["{python}", "/app/main.py"]')
    return lines


def label_lines(module: Module) -> list[str]:
    labels = {
        "org.opencontainers.image.title": f"edgevision-{module.name}",
        "org.opencontainers.image.description": module.summary,
        "org.opencontainers.image.version": project_version(),
        "org.opencontainers.image.licenses": "MIT",
    }
    return ["LABEL " + " \\\n      ".join(f"{k}={json.dumps(v)}" for k, v in labels.items())]


def env_lines(module: Module, extra: tuple[str, ...] = ()) -> list[str]:
    values = [
        "PYTHONDONTWRITEBYTECODE=1",
        "PYTHONUNBUFFERED=1",
        "PIP_DISABLE_PIP_VERSION_CHECK=1",
        *extra,
        *(f"{k}={v}" for k, v in module.env),
    ]
    return ["ENV " + " \\\n    ".join(values)]


# What every image copies to build the package: one list, so a file the build needs cannot be missed in one image.
SOURCE_COPY = ("COPY pyproject.toml README.md LICENSE /tmp/src/", "COPY edgevision/ /tmp/src/edgevision/")


# The build machine's CA bundle for pip, where it needs one (scripts/images.sh copies $PIP_CERT there); the
# wildcard lets it be absent (with LICENSE, the COPY always has a source, for the legacy builder and BuildKit
# alike). Only the build stage sees it: the final stage copies the venv alone.
PIP_CERT_FILE = ".images-cache/pip-cert.pem"
CERT_LINES = (
    "# The build machine's CA bundle for pip if it needs one (scripts/images.sh puts it there; may be absent).",
    f"COPY LICENSE {PIP_CERT_FILE[:-1]}[{PIP_CERT_FILE[-1]}] /tmp/cert/",
)
CERT_ENV = "if [ -f /tmp/cert/pip-cert.pem ]; then export PIP_CERT=/tmp/cert/pip-cert.pem; fi"


# The trainer's feature extractor (8.9 MB) comes with the package; only an image that trains keeps it.
BACKBONE = "/opt/venv/lib/python3*/site-packages/edgevision/models/default/backbone.onnx"


def drop_backbone(module: Module) -> list[str]:
    return [] if module.trains else [f"    && rm {BACKBONE}"]


def python_dockerfile(module: Module, platform: str, debug: bool) -> str:
    extra = module.extra_for(platform)
    debugpy = f" {DEBUGPY}" if debug else ""
    install = f'       "/tmp/src[{extra}]"{debugpy}'
    lines = [
        *header(module, platform, debug),
        "# Two stages: pip runs in the first; the image is the base plus the venv it filled (no pip cache,",
        "# sources or CA bundle)" + ("." if module.trains else "; no trainer's feature extractor: it does not train."),
        f"FROM {BASES[platform]} AS build",
        "ENV PIP_DISABLE_PIP_VERSION_CHECK=1",
        f"# Only the `{extra}` extra, at the versions pinned in constraints.txt.",
        f"COPY modules/{module.folder}/constraints.txt /tmp/constraints.txt",
        *SOURCE_COPY,
        *CERT_LINES,
        "RUN python -m venv --without-pip /opt/venv \\",
        f"    && {CERT_ENV} \\",
        "    && python -m pip --python /opt/venv/bin/python install --no-cache-dir -c /tmp/constraints.txt \\",
        *([install + " \\", *drop_backbone(module)] if not module.trains else [install]),
        "",
        f"FROM {BASES[platform]}",
        *label_lines(module),
        "",
        *env_lines(module, ("PATH=/opt/venv/bin:$PATH",)),
        "",
        "COPY --from=build /opt/venv /opt/venv",
        *user_lines(module),
        *tail_lines(module, debug, "python"),
    ]
    return "\n".join(lines) + "\n"


def debian_dockerfile(module: Module, platform: str, debug: bool) -> str:
    packages = " ".join(["python3", *module.debian, *(["python3-debugpy"] if debug else [])])
    apt = [
        "# PyPI has no armv7 wheels for onnxruntime, numpy, Pillow or OpenCV: Debian's armhf builds stand in.",
        "# Versions follow the pinned Debian point release plus its security updates (so no apt pins).",
        "# hadolint ignore=DL3008",
        "RUN apt-get update \\",
        f"    && apt-get install -y --no-install-recommends {packages}{{venv}} \\",
        "    && rm -rf /var/lib/apt/lists/*",
    ]
    lines = [
        *header(module, platform, debug),
        "# Two stages: pip runs in the first; the image is Debian's packages plus the venv it filled (no pip,",
        "# sources or CA bundle)" + ("." if module.trains else "; no trainer's feature extractor: it does not train."),
        f"FROM {BASES[platform]} AS build",
        "ENV PIP_DISABLE_PIP_VERSION_CHECK=1",
        *(line.replace("{venv}", " python3-venv") for line in apt),
        "",
        f"# The venv sees Debian's packages; pip adds only the pure-Python rest of the `{module.extra}` extra, pinned.",
        f"COPY modules/{module.folder}/requirements.arm32v7.txt /tmp/requirements.txt",
        *SOURCE_COPY,
        *CERT_LINES,
        "RUN python3 -m venv --system-site-packages /opt/venv \\",
        f"    && {CERT_ENV} \\",
        "    && /opt/venv/bin/pip install --no-cache-dir --no-deps -r /tmp/requirements.txt \\",
        "    && /opt/venv/bin/pip install --no-cache-dir --no-deps /tmp/src \\",
        "    && /opt/venv/bin/pip uninstall -y -q pip setuptools" + ("" if module.trains else " \\"),
        *drop_backbone(module),
        "",
        f"FROM {BASES[platform]}",
        *label_lines(module),
        "",
        *env_lines(module, ("PATH=/opt/venv/bin:$PATH",)),
        "",
        *(line.replace("{venv}", "") for line in apt),
        "COPY --from=build /opt/venv /opt/venv",
        f'RUN python -c "import {module.imports}"',
        "",
        *user_lines(module),
        *tail_lines(module, debug, "python"),
    ]
    return "\n".join(lines) + "\n"


def dockerfile(module: Module, platform: str, debug: bool) -> str:
    render = debian_dockerfile if platform == "arm32v7" else python_dockerfile
    return render(module, platform, debug)


def module_json(module: Module) -> str:
    platforms: dict[str, str] = {}
    for platform in PLATFORMS:
        platforms[platform] = f"./Dockerfile.{platform}"
        platforms[f"{platform}.debug"] = f"./Dockerfile.{platform}.debug"
    data = {
        "$schema-version": "0.0.1",
        "description": f"{module.name}: {module.summary}. Build context: the repository root.",
        "image": {
            "repository": f"${{CONTAINER_REGISTRY_ADDRESS}}/edgevision-{module.name}",
            "tag": {"version": project_version(), "platforms": platforms},
            "buildOptions": [],
            "contextPath": "../..",
        },
        "language": "python",
    }
    return json.dumps(data, indent=2) + "\n"


def arm32_requirements(module: Module) -> str:
    lines = [
        f"# Pure-Python packages pip installs in the arm32v7 {module.folder} image (Debian provides the native",
        "# ones). Derived from constraints.txt by `python modules/generate.py`.",
        *pure_python_pins(module),
    ]
    return "\n".join(lines) + "\n"


def main_py(module: Module) -> str:
    return f'from edgevision.cli import main\n\nraise SystemExit(main(["{module.command}"]))\n'


def generated_files() -> dict[Path, str]:
    files: dict[Path, str] = {}
    for module in MODULES:
        folder = MODULES_DIR / module.folder
        for platform in PLATFORMS:
            for debug in (False, True):
                name = f"Dockerfile.{platform}{'.debug' if debug else ''}"
                files[folder / name] = dockerfile(module, platform, debug)
        files[folder / "module.json"] = module_json(module)
        files[folder / "main.py"] = main_py(module)
        files[folder / "requirements.arm32v7.txt"] = arm32_requirements(module)
    return files


ENV_TEMPLATE = ROOT / ".env.template"
ENV_MARKER = "# --- Other settings the modules read "


def env_template_section() -> str:
    """The tail of .env.template: every setting a module reads that the templates do not set, with its default
    and description, taken from the modules' Settings classes (needs the package installed)."""
    import textwrap

    from edgevision.capture.settings import CaptureSettings
    from edgevision.classifier.settings import ClassifierSettings
    from edgevision.display.settings import DisplaySettings
    from edgevision.portal.settings import PortalSettings

    template = json.loads((ROOT / "deployment.template.json").read_text())["modulesContent"]
    agents = template["$edgeAgent"]["properties.desired"]["modules"]
    lines = [
        "#   every module:",
        "#     LOG_LEVEL (INFO): DEBUG, INFO, WARNING or ERROR (VERBOSE=true also turns on DEBUG).",
    ]
    for name, settings in (
        ("image-classifier-service", ClassifierSettings),
        ("camera-capture", CaptureSettings),
        ("sensehat-display", DisplaySettings),
        ("custom-vision-portal", PortalSettings),
    ):
        used = set(agents[name].get("env", {})) | set(template.get(name, {}).get("properties.desired", {}))
        lines.append(f"#   {name}:")
        for var, field_name in settings.env_names().items():
            if var in used:
                continue
            info = settings.model_fields[field_name]
            lines += textwrap.wrap(
                f"{var} ({_shown_default(info)}): {info.description}",
                width=110,
                initial_indent="#     ",
                subsequent_indent="#       ",
            )
    return "\n".join(lines) + "\n"


def _shown_default(info) -> str:
    if info.default_factory is not None:
        value = info.default_factory()
        return "empty" if isinstance(value, list | dict) and not value else "per machine"
    value = getattr(info.default, "value", info.default)  # enums
    if value is None:
        return "unset"
    return str(value).lower() if isinstance(value, bool) else str(value)


def write_env_template() -> bool:
    """Rewrite .env.template below its `Other settings` header (kept by hand above it); True if changed."""
    text = ENV_TEMPLATE.read_text()
    head, marker, tail = text.partition(ENV_MARKER)
    if not marker:
        raise SystemExit(f".env.template has no line starting with {ENV_MARKER!r}")
    header, _, _ = tail.partition("\n#   ")  # the marker's explanation lines stay
    updated = head + marker + header + "\n" + env_template_section()
    if updated == text:
        return False
    ENV_TEMPLATE.write_text(updated)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="report files that differ from the table; exit 1")
    group.add_argument("--lock", action="store_true", help="re-resolve constraints.txt from PyPI first")
    args = parser.parse_args(argv)
    if args.lock:
        for module in MODULES:
            write_lock(module)
    stale = []
    for path, text in generated_files().items():
        if path.exists() and path.read_text() == text:
            continue
        if args.check:
            stale.append(path.relative_to(ROOT))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    # Not part of --check: descriptions change with the modules; tests/deploy checks that every name is there.
    if not args.check and write_env_template():
        print("wrote .env.template (the other-settings section)")
    for path in stale:
        print(f"out of date: {path} (run python modules/generate.py)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
