"""The faust-streaming runtime: agents that drive the same pipeline halves as the native worker."""
