"""The shared helpers for atomic writes and backoff."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgevision.backoff import Backoff, backoff_delay
from edgevision.files import copy_atomic, is_temp_file, write_atomic


def test_write_atomic_replaces_the_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "state.json"
    write_atomic(target, "first")
    write_atomic(target, b"second", durable=True)
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["state.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tiny_disk: Path) -> None:
    target = tiny_disk / "model.bin"
    write_atomic(target, b"old" * 100)
    with pytest.raises(OSError):
        write_atomic(target, os.urandom(3_000_000), durable=True)
    assert target.read_bytes() == b"old" * 100
    assert [p.name for p in tiny_disk.iterdir()] == ["model.bin"]


def test_copy_atomic_and_temp_file_names(tmp_path: Path) -> None:
    source, target = tmp_path / "src", tmp_path / "dst"
    source.write_bytes(b"x" * 1000)
    target.write_bytes(b"old")
    copy_atomic(source, target)
    assert target.read_bytes() == b"x" * 1000
    assert is_temp_file(tmp_path / ".dst.abc123.tmp") and not is_temp_file(target)


def test_backoff_doubles_to_a_cap_that_can_change_and_resets() -> None:
    assert [backoff_delay(n, initial=1.0, maximum=30.0) for n in (1, 2, 3, 6, 99)] == [1.0, 2.0, 4.0, 30.0, 30.0]
    backoff = Backoff(maximum=10.0)
    assert [backoff.next() for _ in range(3)] == [0.5, 1.0, 2.0]
    backoff.maximum = 1.5
    assert backoff.next() == 1.5
    backoff.reset()
    assert backoff.next() == 0.5
