"""Bundled demo material: a few real photos (licences beside them) used by the demo and self-contained tests."""

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
DEMO_PHOTOS = DEMO_DIR / "media" / "photos"


def demo_photos() -> list[Path]:
    """The bundled photos, in a stable order."""
    return sorted(p for p in DEMO_PHOTOS.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
