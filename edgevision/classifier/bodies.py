"""Oversized request bodies, read and dropped as they arrive so the client still gets a clean 413 JSON answer.

Flask answers 413 from the Content-Length header alone, but a client still sending a 30 MB body when the
server closes gets a connection reset instead of that answer. So waitress reads bodies over the service's
limit (up to DISCARD_CAP) into a buffer that keeps nothing, then hands the request to Flask with its
Content-Length intact and an empty body. Beyond DISCARD_CAP (or a chunked body over it), waitress refuses
before reading, with the same JSON body, and closes the connection.
"""

from __future__ import annotations

import io

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.receiver import FixedStreamReceiver
from waitress.task import ErrorTask

from edgevision.contracts import ErrorBody, dumps

MB = 1024 * 1024
DISCARD_CAP = 64 * MB


class DiscardBuffer:
    """A waitress body buffer that counts what it is given and keeps none of it."""

    def __init__(self) -> None:
        self.discarded = 0

    def append(self, data: bytes) -> None:
        self.discarded += len(data)

    def __len__(self) -> int:
        return 0

    def getfile(self) -> io.BytesIO:
        return io.BytesIO()

    def close(self) -> None:
        pass


class _DiscardingParser(HTTPRequestParser):
    keep_limit = 0  # bodies larger than this are discarded (set per server by channel_class_for)

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        if not self.chunked and self.keep_limit < self.content_length < self.adj.max_request_body_size:
            self.body_rcv = FixedStreamReceiver(self.content_length, DiscardBuffer())


class _JsonErrorTask(ErrorTask):
    """waitress' own refusals (body over the cap, malformed request) as `{"code", "message"}` JSON."""

    def execute(self) -> None:
        error = self.request.error
        code = "BadRequestImageSizeBytes" if error.code == 413 else error.reason.replace(" ", "")
        message = f"the request body is larger than {DISCARD_CAP:,} bytes" if error.code == 413 else error.body
        body = dumps(ErrorBody(code=code, message=message)).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


def channel_class_for(keep_limit: int) -> type[HTTPChannel]:
    """A waitress channel that keeps bodies up to `keep_limit` bytes and discards larger ones."""
    parser = type("DiscardingParser", (_DiscardingParser,), {"keep_limit": keep_limit})
    return type("DiscardingChannel", (HTTPChannel,), {"parser_class": parser, "error_task_class": _JsonErrorTask})


def install(server, keep_limit: int) -> None:
    """Make a waitress server (one socket, or a MultiSocketServer of several) use the discarding channel."""
    channel_class = channel_class_for(keep_limit)
    listeners = getattr(server, "map", {}).values() if not hasattr(server, "channel_class") else [server]
    for listener in listeners:
        if hasattr(listener, "channel_class"):
            listener.channel_class = channel_class
