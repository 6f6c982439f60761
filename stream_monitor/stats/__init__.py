"""Sketches, distances and profiles: pure numerics, mergeable, no I/O."""
