"""JSON Lines files: the replay reader and line-oriented writers."""
