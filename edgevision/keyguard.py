"""Guessing a key is slowed to a crawl: after `limit` wrong keys from one client address within `window`
seconds, that address is refused (HTTP 429 with Retry-After) until its oldest failure is `window` old.

While refused, a request is not checked at all, so even the right key gets 429: an answer that told right
from wrong would let the guessing go on. A right key clears the address's failures. Every HTTP surface
with a key uses one guard per key (the scorer's Prediction-Key, the portal's keys and login, the camera
viewer's key and login). Behind a reverse proxy every client shares the proxy's address.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

ATTEMPTS = 10
WINDOW_SECONDS = 300.0
# Memory stays bounded when many addresses guess: the longest-quiet address is forgotten first.
MAX_ADDRESSES = 4096


class KeyGuard:
    def __init__(
        self,
        limit: int = ATTEMPTS,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, address: str | None) -> int | None:
        """Whole seconds until `address` may try again, or None when it may try now."""
        with self._lock:
            failures = self._recent(address or "")
            if failures is None or len(failures) < self.limit:
                return None
            return max(1, math.ceil(failures[0] + self.window - self._clock()))

    def failed(self, address: str | None) -> None:
        with self._lock:
            address = address or ""
            failures = self._recent(address)
            if failures is None:
                failures = self._failures[address] = deque(maxlen=self.limit)
                while len(self._failures) > self._max_addresses:
                    self._failures.popitem(last=False)
            failures.append(self._clock())
            self._failures.move_to_end(address)

    def succeeded(self, address: str | None) -> None:
        with self._lock:
            self._failures.pop(address or "", None)

    def _recent(self, address: str) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        cutoff = self._clock() - self.window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures


def refusal_message(seconds: int) -> str:
    return f"too many wrong keys from this address: try again in {seconds} s"
