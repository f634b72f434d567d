"""Every variable is accounted for: what the templates use is defined in .env.template, what .env.template defines
is used, and every environment variable a module reads (its Settings fields and any direct os.environ read) is
set by the manifest or documented in .env.template."""

from __future__ import annotations

import re
import subprocess

import pytest

from edgevision.hub.client import CONNECTION_STRING_VARIABLES, EDGE_VARIABLES
from tests.conftest import ROOT
from tests.deploy.conftest import (
    MODULE_FOLDERS,
    TEMPLATES,
    agent_modules,
    desired,
    environ_reads,
    load_json,
    module_code,
    package_files,
    parse_dotenv,
    placeholders,
)

# Code every module runs besides its own package: the CLI, settings, the hub wrapper, the scoring core.
SHARED_CODE = ("edgevision/cli.py", "edgevision/config.py", "edgevision/hub", "edgevision/models")


def template_texts() -> dict[str, str]:
    texts = {name: (ROOT / name).read_text() for name in TEMPLATES}
    for folder in MODULE_FOLDERS:
        texts[f"modules/{folder}/module.json"] = (ROOT / "modules" / folder / "module.json").read_text()
    return texts


def documented(name: str, text: str) -> bool:
    return re.search(rf"(?<![\w$]){re.escape(name)}(?!\w)", text) is not None


def test_every_template_variable_is_defined_in_env_template():
    defined = set(parse_dotenv(ROOT / ".env.template"))
    for name, text in template_texts().items():
        used = {p for p in placeholders(text) if not p.startswith("MODULES.")}
        assert used, f"{name} uses no variables?"
        missing = used - defined
        assert not missing, f"{name} uses {sorted(missing)}, not defined in .env.template"


def test_every_env_template_variable_is_used_and_commented():
    used = set().union(*(placeholders(t) for t in template_texts().values()))
    lines = (ROOT / ".env.template").read_text().splitlines()
    for index, line in enumerate(lines):
        if line.strip() and not line.startswith("#"):
            name = line.split("=", 1)[0]
            assert name in used, f".env.template defines {name}, which no template uses"
            assert lines[index - 1].startswith("#") or lines[index - 1].split("=")[0] in used, (
                f"{name} has no comment above it"
            )


def test_env_is_git_ignored():
    result = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False)
    assert result.returncode == 0, ".env holds the registry password: it must be git-ignored"


@pytest.mark.parametrize("folder", MODULE_FOLDERS)
def test_every_variable_a_module_reads_is_set_or_documented(folder):
    code = module_code(folder)
    reads = set(code.settings.env_names())
    paths = package_files(code.package)
    for shared in SHARED_CODE:
        target = ROOT / shared
        paths += sorted(target.rglob("*.py")) if target.is_dir() else [target]
    reads |= environ_reads(paths)
    reads -= set(EDGE_VARIABLES) | set(CONNECTION_STRING_VARIABLES)  # set by the IoT Edge runtime
    assert len(reads) >= 5, f"{folder}: found only {reads}; is the introspection still finding the code?"

    covered: set[str] = set()
    for name in TEMPLATES:
        manifest = load_json(ROOT / name)
        for module_name, module in agent_modules(manifest).items():
            if f"MODULES.{folder}" in module["settings"]["image"]:
                covered |= set(module.get("env", {})) | set(desired(manifest, module_name))
    env_template = (ROOT / ".env.template").read_text()
    undocumented = sorted(n for n in reads - covered if not documented(n, env_template))
    assert not undocumented, (
        f"{folder} reads {undocumented}: set them in the manifest or document them in .env.template"
    )


def test_the_documentation_check_notices_a_new_setting():
    """The check above can fail: a variable nobody mentions is not documented."""
    env_template = (ROOT / ".env.template").read_text()
    assert documented("JPEG_QUALITY", env_template)
    assert not documented("QUALITY", env_template)  # only whole names count
    assert not documented("EDGEVISION_NO_SUCH_SETTING", env_template)
