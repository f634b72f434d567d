"""docs/scoring-service.md stays in step with the code."""

from __future__ import annotations

from pathlib import Path

from edgevision.classifier.settings import ClassifierSettings, settings_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "scoring-service.md"


def test_settings_table_is_the_generated_one() -> None:
    assert settings_markdown() in DOC.read_text(encoding="utf-8")


def test_every_setting_is_described() -> None:
    for name, field in ClassifierSettings.model_fields.items():
        assert field.description and len(field.description) > 10, name
