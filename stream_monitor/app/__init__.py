"""The composition root and the jobs built on it: run, replay, demo."""
