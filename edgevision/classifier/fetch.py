"""Download the image of a `/url` request: http(s) only, bounded in time and size, guarded against SSRF.

Addresses are resolved once, checked, and the connection is made to the checked address (so a DNS answer
cannot change between the check and the connection). Redirects are followed by hand and checked the same way.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from urllib.parse import urljoin, urlsplit

from edgevision import __version__
from edgevision.classifier.errors import ApiError, bad_request

MAX_REDIRECTS = 3
CHUNK = 64 * 1024
REDIRECTS = {301, 302, 303, 307, 308}


def fetch_image(
    url: str, *, max_bytes: int, timeout: float, allow_private: bool = False, cafile: str | None = None
) -> bytes:
    """The body at `url`, or ApiError (BadRequestImageUrl / BadRequestImageSizeBytes). `cafile` replaces the
    system's CA certificates for https (a private server)."""
    deadline = time.monotonic() + timeout
    for _ in range(MAX_REDIRECTS + 1):
        status, location, body = _get(url, max_bytes, deadline, allow_private, cafile)
        if status in REDIRECTS and location:
            url = urljoin(url, location)
            continue
        if not 200 <= status < 300:
            raise bad_request("BadRequestImageUrl", f"the image URL answered HTTP {status}")
        return body
    raise bad_request("BadRequestImageUrl", f"the image URL redirects more than {MAX_REDIRECTS} times")


def _get(
    url: str, max_bytes: int, deadline: float, allow_private: bool, cafile: str | None = None
) -> tuple[int, str, bytes]:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL", "Port out of range"
        raise bad_request("BadRequestImageUrl", f"the image URL is malformed: {exc}") from None
    if parts.scheme not in {"http", "https"} or not host:
        raise bad_request("BadRequestImageUrl", "the image URL must be an absolute http:// or https:// URL")
    addresses = _checked_addresses(host, port, allow_private)
    try:
        conn = _connect(parts.scheme, host, port, addresses, deadline, cafile)
        sock = conn.sock  # http.client drops conn.sock once a closing response arrives; the body still reads
        try:
            path = parts.path or "/"
            conn.request("GET", f"{path}?{parts.query}" if parts.query else path, headers=_HEADERS)
            response = conn.getresponse()
            if response.status in REDIRECTS:
                return response.status, response.getheader("Location", ""), b""
            if response.status >= 300:
                return response.status, "", b""
            return response.status, "", _read(response, sock, max_bytes, deadline)
        finally:
            conn.close()
    except ApiError:
        raise
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
        raise bad_request("BadRequestImageUrl", f"cannot download the image URL: {reason}") from None


_HEADERS = {"User-Agent": f"edgevision/{__version__}", "Accept": "image/*"}


def _checked_addresses(host: str, port: int, allow_private: bool) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise bad_request("BadRequestImageUrl", f"cannot resolve the image URL's host {host!r}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not allow_private:
        for address in addresses:
            if not _is_public(address):
                raise bad_request(
                    "BadRequestImageUrl",
                    f"the image URL's host {host!r} is a private, loopback or reserved address ({address});"
                    " set URL_ALLOW_PRIVATE=true to allow it",
                )
    return addresses


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _connect(
    scheme: str, host: str, port: int, addresses: list[str], deadline: float, cafile: str | None = None
) -> http.client.HTTPConnection:
    sock = _open_socket(addresses, port, deadline)
    if scheme == "https":
        context = ssl.create_default_context(cafile=cafile)
        sock = context.wrap_socket(sock, server_hostname=host)
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, context=context)
    else:
        conn = http.client.HTTPConnection(host, port)
    conn.sock = sock  # already connected to the checked address; http.client will not resolve again
    return conn


def _open_socket(addresses: list[str], port: int, deadline: float) -> socket.socket:
    """Connect to the first checked address that answers (e.g. ::1 refused, then 127.0.0.1)."""
    error: OSError = OSError("no address")
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout=_remaining(deadline))
        except TimeoutError:
            raise
        except OSError as exc:
            error = exc
    raise error


def _read(response: http.client.HTTPResponse, sock: socket.socket, limit: int, deadline: float) -> bytes:
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while not response.isclosed():  # http.client closes the response (and socket) after the last byte
        sock.settimeout(_remaining(deadline))
        chunk = response.read1(CHUNK)  # at most one recv, so the deadline holds against a slow drip
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "BadRequestImageSizeBytes", f"the image at the URL is larger than {limit:,} bytes")
