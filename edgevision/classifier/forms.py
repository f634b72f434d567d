"""A request class whose form fields keep their exact bytes, so an image sent as a plain form field survives."""

from __future__ import annotations

from urllib.parse import parse_qsl

from flask import Request
from werkzeug.datastructures import Headers
from werkzeug.formparser import FormDataParser, MultiPartParser


class _Latin1MultiPartParser(MultiPartParser):
    # Latin-1 maps every byte to one character, so `field.encode("latin-1")` gives the bytes back.
    def get_part_charset(self, headers: Headers) -> str:
        return "latin-1"


class _BinaryFormDataParser(FormDataParser):
    def _parse_multipart(self, stream, mimetype, content_length, options):
        parser = _Latin1MultiPartParser(
            stream_factory=self.stream_factory,
            max_form_memory_size=self.max_form_memory_size,
            max_form_parts=self.max_form_parts,
            cls=self.cls,
        )
        boundary = options.get("boundary", "").encode("ascii")
        if not boundary:
            raise ValueError("Missing boundary")
        form, files = parser.parse(stream, boundary, content_length)
        return stream, form, files

    def _parse_urlencoded(self, stream, mimetype, content_length, options):
        items = parse_qsl(stream.read().decode("latin-1"), keep_blank_values=True, encoding="latin-1")
        return stream, self.cls(items), self.cls()


class ImageRequest(Request):
    form_data_parser_class = _BinaryFormDataParser


def form_field_bytes(value: str) -> bytes:
    """The bytes of a form field parsed by ImageRequest."""
    return value.encode("latin-1")
