"""Exponential backoff, one rule for every retry loop: the scorer client, camera sources, module restarts."""

from __future__ import annotations


def backoff_delay(attempt: int, *, initial: float, maximum: float) -> float:
    """The wait before retry number `attempt` (1-based): initial, 2x, 4x ... capped at `maximum`."""
    return min(initial * 2 ** max(attempt - 1, 0), maximum)


class Backoff:
    """Successive delays of `backoff_delay`; `reset` after a success. `maximum` may change live (a twin)."""

    def __init__(self, maximum: float, initial: float = 0.5) -> None:
        self.maximum = maximum
        self.initial = initial
        self.attempts = 0

    def next(self) -> float:
        self.attempts += 1
        return backoff_delay(self.attempts, initial=self.initial, maximum=self.maximum)

    def reset(self) -> None:
        self.attempts = 0
