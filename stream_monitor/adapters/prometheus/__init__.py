"""The Prometheus exporter: a scrape-time collector over the service's counters."""
