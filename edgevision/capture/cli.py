"""`edgevision capture` (the CameraCapture module, configured by environment variables as in its container)
and `edgevision slideshow` (a test clip from photos)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    capture = subparsers.add_parser(
        "capture",
        help="run the camera module: read a camera/video, score frames, report, keep frames that matter",
        description="Run the CameraCapture module. It is configured by environment variables (VIDEO_PATH,"
        " IMAGE_PROCESSING_ENDPOINT, CAPTURE_TAGS, ...; see docs/capture.md); the options below override them.",
    )
    capture.add_argument("--video", metavar="PATH", help="overrides VIDEO_PATH")
    capture.add_argument("--endpoint", metavar="URL", help="overrides IMAGE_PROCESSING_ENDPOINT")
    capture.add_argument("--show-video", action="store_true", default=None, help="sets SHOW_VIDEO=true")
    capture.set_defaults(func=run_capture)

    slideshow = subparsers.add_parser(
        "slideshow",
        help="make an MJPG .avi clip from photos (a stand-in camera for tests and demos)",
        description="Write a video clip that shows each photo for a while, letterboxed to one frame size.",
    )
    slideshow.add_argument("photos", nargs="+", help="image files, shown in this order")
    slideshow.add_argument("-o", "--out", required=True, help="output .avi file")
    slideshow.add_argument("--fps", type=float, default=5.0, help="frames per second (default 5)")
    slideshow.add_argument("--seconds", type=float, default=1.0, help="seconds each photo is shown (default 1)")
    slideshow.add_argument("--size", default="640x480", help="frame size WIDTHxHEIGHT (default 640x480)")
    slideshow.set_defaults(func=run_slideshow)


def run_capture(args: argparse.Namespace) -> int:
    import signal

    from edgevision.capture.module import CaptureModule
    from edgevision.capture.settings import CaptureSettings
    from edgevision.capture.sources import check_source
    from edgevision.hub import connect

    settings = CaptureSettings.from_env(
        video_path=args.video, image_processing_endpoint=args.endpoint, show_video=args.show_video
    )
    check_source(settings.video_path)  # before connecting: a typo in VIDEO_PATH gives exactly one line
    with connect("camera-capture") as hub:
        module = CaptureModule(settings, hub)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: module.stop())  # finish the frame, flush, report, exit 0
        return module.run()


def run_slideshow(args: argparse.Namespace) -> int:
    from edgevision.demo.slideshow import SlideshowError, make_slideshow

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise SlideshowError(f"--size: expected WIDTHxHEIGHT, got {args.size!r}") from None
    show = make_slideshow(args.photos, args.out, args.fps, args.seconds, size=(width, height))
    print(f"{show.path}: {show.frame_count} frames, {len(show.photos)} photos, {show.fps:g} fps")
    return 0
