"""The pure per-model pipeline: windows, folding, the label join, detection and the alert lifecycle."""
