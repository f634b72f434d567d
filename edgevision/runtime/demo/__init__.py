"""The demo run: the bundled photos as a camera clip through the whole solution (see docs/local-runtime.md).

The clip shows each bundled photo for two seconds. What the bundled ImageNet model says about them decides the
capture tags: the zebra photos (2014_000006/7) and the elephant (2014_000002) are kept, nothing else.
"""

from __future__ import annotations

from pathlib import Path

from edgevision.demo import DEMO_PHOTOS
from edgevision.errors import EdgeVisionError

DEMO_MANIFEST = Path(__file__).resolve().parent / "deployment.demo.json"
# The same, with the optional custom-vision-portal module reading the camera's captures (`run --portal`).
DEMO_PORTAL_MANIFEST = DEMO_MANIFEST.with_name("deployment.demo-portal.json")
# Order mixes kept and ignored photos so the capture folder visibly fills only with the capture tags.
DEMO_ORDER = (
    "darknet/dog.jpg",
    "wildlife-wildbook/2014_000001.jpg",
    "wildlife-wildbook/2014_000002.jpg",
    "wildlife-wildbook/2014_000003.jpg",
    "darknet/horses.jpg",
    "wildlife-wildbook/2014_000006.jpg",
    "wildlife-wildbook/2014_000004.jpg",
    "wildlife-wildbook/2014_000007.jpg",
    "wildlife-wildbook/2014_000005.jpg",
    "darknet/person.jpg",
)
SECONDS_EACH = 2.0
FPS = 2.0


def demo_clip(out: Path) -> Path:
    """Write (once) the demo clip under `out/media` and return its path."""
    try:
        from edgevision.demo.slideshow import make_slideshow
    except ImportError as exc:
        raise EdgeVisionError(
            f"the demo needs the camera module's packages ({exc.name}): run scripts/setup.sh demo"
        ) from None

    clip = out / "media" / "demo-slideshow.avi"
    if not clip.is_file():
        make_slideshow([DEMO_PHOTOS / p for p in DEMO_ORDER], clip, fps=FPS, seconds_each=SECONDS_EACH)
    return clip


def prepare_demo(out: Path, portal: bool = False) -> tuple[Path, dict[str, str]]:
    """The demo manifest (with the portal, or not) and the template variables it needs (`DEMO_CLIP`)."""
    return DEMO_PORTAL_MANIFEST if portal else DEMO_MANIFEST, {"DEMO_CLIP": str(demo_clip(out).resolve())}
