"""The package layout the guide promises: modules and tools never import each other (only shared code)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edgevision"
# Each module or tool; what they may share is everything else (models, hub, contracts, config, errors, demo).
SEPARATE = {"capture", "classifier", "display", "runtime", "train", "batch"}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_modules_and_tools_import_no_other_module_or_tool() -> None:
    crossings = []
    for package in sorted(SEPARATE):
        for path in sorted((PACKAGE / package).rglob("*.py")):
            for name in imported(path):
                parts = name.split(".")
                if parts[0] == "edgevision" and len(parts) > 1 and parts[1] in SEPARATE - {package}:
                    crossings.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert not crossings, "\n".join(crossings)


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from edgevision.capture.store import CaptureStore\n")
    assert imported(source) == {"edgevision.capture.store"}
