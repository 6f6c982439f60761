"""Development helpers (synthetic streams, local broker) used by the demo and tests, not by the service."""
