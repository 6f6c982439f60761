"""``python -m stream_monitor.devtools.kafka``: see :mod:`stream_monitor.devtools.kafka.cli`."""

from stream_monitor.devtools.kafka.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
