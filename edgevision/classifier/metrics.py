"""Prometheus metrics of one app instance (its own registry, so several apps can live in one process)."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        prefix = "edgevision_classifier"
        self.requests = Counter(
            f"{prefix}_requests", "HTTP requests by route and status.", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            f"{prefix}_request_seconds",
            "Time to answer a request, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(f"{prefix}_errors", "Error answers by code.", ["code"], registry=self.registry)
        self.decode = Histogram(
            f"{prefix}_decode_seconds", "Time to decode an image.", buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.inference = Histogram(
            f"{prefix}_inference_seconds",
            "Time to pre-process and score a decoded image, by model.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.model_info = Gauge(
            f"{prefix}_model_info", "The default model (value 1).", ["model_id", "tags"], registry=self.registry
        )

    def set_model(self, model_id: str, tags: int, previous_id: str | None = None, previous_tags: int = 0) -> None:
        """The default model's info series; the replaced model's series goes (a twin swapped the model)."""
        if previous_id is not None:
            with contextlib.suppress(KeyError):
                self.model_info.remove(previous_id, str(previous_tags))
        self.model_info.labels(model_id, str(tags)).set(1)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
