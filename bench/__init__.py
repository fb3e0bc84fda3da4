"""Measurements, not tests: ``make bench`` (bench.run, docs/performance.md) and ``make soak``
(bench.soak, docs/reliability.md). Nothing here is imported by the exporter."""
