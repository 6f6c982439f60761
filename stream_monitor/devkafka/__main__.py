"""``python -m stream_monitor.devkafka``: see :mod:`stream_monitor.devkafka.cli`."""

from stream_monitor.devkafka.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
