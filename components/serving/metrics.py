"""Prometheus metrics of one app instance (its own registry, so several apps can coexist in tests)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("defectqa_requests", "HTTP requests by endpoint and status code",
                                ["endpoint", "status"], registry=r)
        self.latency = Histogram("defectqa_request_latency_seconds", "Wall time per HTTP request",
                                 ["endpoint"], buckets=BUCKETS, registry=r)
        self.inference = Histogram("defectqa_inference_latency_seconds", "Model time per answer",
                                   buckets=BUCKETS, registry=r)
        self.model_version = Gauge("defectqa_model_version",
                                   "Registry version serving now (0 = none or a local folder)", registry=r)
        self.model_loaded = Gauge("defectqa_model_loaded", "1 when a model is loaded and serving", registry=r)
        self.reloads = Gauge("defectqa_model_reloads", "Hot swaps to a newly promoted champion since start",
                             registry=r)
        self.model = Info("defectqa_model", "The model serving now", registry=r)
        self.batch_size = Histogram("defectqa_batch_size", "Requests answered per model call (micro-batching)",
                                    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32), registry=r)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def render(self, holder) -> bytes:
        """The exposition text, with the model gauges read from the holder at scrape time."""
        served = holder.current
        self.model_loaded.set(1 if served else 0)
        self.model_version.set(int(served.version) if served and served.version.isdigit() else 0)
        self.reloads.set(holder.reloads)
        self.model.info({"name": served.name, "version": served.version} if served
                        else {"name": holder.follows or "", "version": "none"})
        return generate_latest(self.registry)
