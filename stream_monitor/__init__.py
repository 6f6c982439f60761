"""stream-monitor: online drift, data-quality and performance monitoring for ML models on Kafka."""

__version__ = "0.1.0"
