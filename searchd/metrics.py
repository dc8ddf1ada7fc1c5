"""Prometheus metrics, in a registry of the app's own (several apps in one process stay apart)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from indexer.library import Library

# Text queries hit an LRU (~0.1 ms); a cold text query on a CPU is ~10-50 ms; an upload ~100 ms+.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, library: Library) -> None:
        self.registry = CollectorRegistry()
        self.query_seconds = Histogram(
            "photoseek_query_seconds",
            "Search latency by kind of query (text, image, like, combined, browse)",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queries = Counter(
            "photoseek_queries", "Searches answered, by kind", ["kind"], registry=self.registry
        )
        self.query_errors = Counter(
            "photoseek_query_errors", "Searches refused or failed, by kind", ["kind"], registry=self.registry
        )
        self.http_errors = Counter(
            "photoseek_http_errors",
            "HTTP responses with status >= 400, by status",
            ["status"],
            registry=self.registry,
        )
        self.thumbnails = Counter(
            "photoseek_thumbnails",
            "Thumbnail requests, by result (cached, made, not_modified)",
            ["result"],
            registry=self.registry,
        )
        vectors = Gauge("photoseek_index_vectors", "Vectors in the search index", registry=self.registry)
        vectors.set_function(library.indexed_count)
        seq = Gauge(
            "photoseek_index_seq", "Catalog change sequence the index reflects", registry=self.registry
        )
        seq.set_function(library.index_seq)
