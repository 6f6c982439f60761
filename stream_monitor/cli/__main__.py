"""``python -m stream_monitor.cli``: the same as the ``stream-monitor`` command."""

from stream_monitor.cli import main

if __name__ == "__main__":
    main()
