"""Thin edges between the pure pipeline and the outside world (Kafka, Faust, files, Prometheus)."""
