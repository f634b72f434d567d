"""The package layout the guide promises: modules and tools never import each other (only shared code)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edgevision"
# Each module or tool; what they may share is everything else (models, hub, contracts, config, errors, demo).
SEPARATE = {"capture", "classifier", "display", "runtime", "train", "batch", "portal", "captures"}
# The one composition: the portal is Custom Vision's service, so it trains with the trainer and predicts
# with the scoring service's own routes instead of a copy of either.
ALLOWED = {("portal", "train"), ("portal", "classifier")}


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
                other = parts[1] if parts[0] == "edgevision" and len(parts) > 1 else ""
                if other in SEPARATE - {package} and (package, other) not in ALLOWED:
                    crossings.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert not crossings, "\n".join(crossings)


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from edgevision.capture.store import CaptureStore\n")
    assert imported(source) == {"edgevision.capture.store"}


def copies_of(pattern: str, allowed: str) -> list[str]:
    """Lines of the package matching `pattern` outside the one file meant to hold that code."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == allowed and path.parent == PACKAGE:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(pattern, line):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    return found


def test_atomic_writes_have_one_helper() -> None:
    # A temp file renamed over its target, or an fsync, belongs in edgevision/files.py.
    assert not copies_of(r"mkstemp\(|os\.fsync\(|\btmp\.replace\(", "files.py")


def test_backoff_has_one_helper() -> None:
    # Doubling a delay up to a cap belongs in edgevision/backoff.py.
    assert not copies_of(r"\* 2\b.*(max|cap)|2 \*\* |min\(delay \* 2", "backoff.py")
