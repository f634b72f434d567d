"""Rewrite the generated contract tables in docs/architecture.md from edgevision/contracts.py.

Run after changing a contract: `python scripts/contracts_doc.py` (tests/test_contracts.py checks it was).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgevision.contracts import DOC_BEGIN, DOC_END, markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def main() -> int:
    text = DOC.read_text(encoding="utf-8")
    if DOC_BEGIN not in text or DOC_END not in text:
        print(f"error: {DOC} has no {DOC_BEGIN} ... {DOC_END} section", file=sys.stderr)
        return 1
    head, rest = text.split(DOC_BEGIN, 1)
    tail = rest.split(DOC_END, 1)[1]
    DOC.write_text(head + markdown() + tail, encoding="utf-8")
    print(f"updated {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
