"""The soak of bench/soak.py, shortened: the local runtime on the demo while modules and brokers are killed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def load_soak():  # bench/ is scripts, not a package
    spec = importlib.util.spec_from_file_location("soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def test_the_solution_survives_random_kills_of_modules_and_brokers(mosquitto, tmp_path: Path) -> None:
    report = load_soak().soak(tmp_path, minutes=2.5, kill_every=4, recover=45, seed=7)
    assert report.failures == []
    assert sum(report.kills.values()) >= 15
    assert any(name.endswith(" broker") for name in report.kills) and "camera-capture" in report.kills
    for target, kills in report.kills.items():
        assert report.restarts[target] >= kills, target
    assert report.results_after_last_kill > 0  # the camera scores again and its results reach $upstream
    assert report.captures_on_disk > 0 and report.capture_events > 0
    assert not report.partial_captures and not report.lost_captures and not report.leaked_processes
