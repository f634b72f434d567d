"""docs/portal.md lists the portal's settings as the code defines them, and the routes the SDK calls."""

from __future__ import annotations

import re

from edgevision.portal.settings import settings_markdown
from tests.conftest import ROOT

DOC = ROOT / "docs" / "portal.md"


def test_the_settings_table_is_the_generated_one() -> None:
    assert settings_markdown() in DOC.read_text(), "regenerate it: python -m edgevision.portal.settings"


def test_every_training_route_the_portal_serves_is_documented(tmp_path) -> None:
    from edgevision.portal.api import create_app
    from edgevision.portal.settings import PortalSettings

    app = create_app(PortalSettings(data_dir=tmp_path))
    text = DOC.read_text()
    rules = {r.rule.split("/training", 1)[1] for r in app.url_map.iter_rules() if "/training/" in r.rule}
    assert len(rules) >= 29
    for rule in rules:
        # the doc's table names each path's last fixed segment (e.g. `.../images/tagged`)
        last = [part for part in rule.split("/") if part and not part.startswith("<")][-1]
        assert re.search(rf"/{re.escape(last)}\b", text), f"{rule} is not in docs/portal.md"
