"""The lowest layer: events, decoding, alerts, errors and the clock; no I/O and no imports from above."""
