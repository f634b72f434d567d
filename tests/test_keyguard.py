"""The guard against guessing keys (edgevision.keyguard), on a clock the test moves. The HTTP surfaces that use it
are tested with real servers in tests/classifier, tests/portal and tests/capture."""

from __future__ import annotations

from edgevision.keyguard import KeyGuard


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_is_refused_after_the_limit_until_its_oldest_failure_ages_out() -> None:
    clock = Clock()
    guard = KeyGuard(limit=3, window=60, clock=clock)
    for _ in range(2):
        guard.failed("203.0.113.7")
        clock.now += 10
    assert guard.retry_after("203.0.113.7") is None  # two wrong keys: still allowed
    guard.failed("203.0.113.7")  # the third, at 1020; the first was at 1000
    assert guard.retry_after("203.0.113.7") == 40
    clock.now += 39.5
    assert guard.retry_after("203.0.113.7") == 1  # never 0 while refused
    clock.now += 0.5
    assert guard.retry_after("203.0.113.7") is None  # the first failure is 60 s old: two left in the window
    guard.failed("203.0.113.7")
    assert guard.retry_after("203.0.113.7") == 10  # refused again until the 1010 failure ages out


def test_addresses_are_counted_apart_and_a_right_key_clears_its_own() -> None:
    guard = KeyGuard(limit=2, window=60, clock=Clock())
    for address in ("203.0.113.7", "203.0.113.7", "198.51.100.1"):
        guard.failed(address)
    assert guard.retry_after("203.0.113.7") == 60
    assert guard.retry_after("198.51.100.1") is None
    guard.succeeded("198.51.100.1")
    guard.failed("198.51.100.1")
    assert guard.retry_after("198.51.100.1") is None  # its earlier failure was forgotten
    assert guard.retry_after(None) is None  # no address (a unix socket): one bucket of its own


def test_memory_is_bounded_by_forgetting_the_longest_quiet_address() -> None:
    clock = Clock()
    guard = KeyGuard(limit=1, window=600, clock=clock, max_addresses=3)
    for n in range(4):
        guard.failed(f"2001:db8::{n}")
        clock.now += 1
    assert guard.retry_after("2001:db8::0") is None  # forgotten: the oldest of four with room for three
    assert all(guard.retry_after(f"2001:db8::{n}") for n in (1, 2, 3))
