"""Sequential tests and change detectors with a stated false-alarm budget; River is wrapped here only."""
