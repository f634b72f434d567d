"""The CameraCapture module (`edgevision capture`): any camera or video in, scored frames out through IoT Edge,
and only the frames that matter kept on disk.

Settings: `edgevision.capture.settings.CaptureSettings`; user guide: docs/capture.md.
"""
