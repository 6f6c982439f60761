"""Write a seeded synthetic model stream (features, predictions, labels) as JSON lines.

A thin CLI over :mod:`stream_monitor.devtools.synthetic`. Example::

    python scripts/synth_stream.py --out /tmp/stream --events 30000 --seed 2 --rate 100 \\
        --drift mean_shift:num_00:start=+100:magnitude=0.75 \\
        --drift new_category:cat_00:start=+200:magnitude=0.3 \\
        --drift score_shift:start=+250:magnitude=1.0

A drift is ``kind[:feature][:key=value]...`` with keys ``start`` (epoch seconds, or ``+seconds`` after the
stream start), ``magnitude``, ``ramp`` (seconds) and ``category``. Prints a JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

try:
    from stream_monitor.devtools import synthetic, synthetic_jsonl, synthetic_spec
except ModuleNotFoundError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from stream_monitor.devtools import synthetic, synthetic_jsonl, synthetic_spec


def build_parser() -> argparse.ArgumentParser:
    defaults = synthetic_spec.StreamSpec()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="directory for features/predictions/labels.jsonl")
    p.add_argument("--events", type=int, required=True, help="number of feature events")
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of the events (default %(default)s)")
    p.add_argument("--model-id", default=defaults.model_id, help="model_id; also fixes the feature world")
    p.add_argument("--numeric", type=int, default=defaults.n_numeric, help="numeric features num_00...")
    p.add_argument(
        "--categorical", type=int, default=defaults.n_categorical, help="categorical features cat_00..."
    )
    p.add_argument("--rate", type=float, default=defaults.events_per_second, help="events per second")
    p.add_argument("--start-ts", type=float, default=defaults.start_ts, help="ts of the first event, epoch s")
    p.add_argument("--pairs", type=int, default=defaults.correlated_pairs, help="correlated numeric pairs")
    p.add_argument("--null-rate", type=float, default=defaults.null_rate, help="baseline share of nulls")
    p.add_argument(
        "--label-delay", type=float, default=defaults.label_delay_mean_s, help="mean label delay, s"
    )
    p.add_argument(
        "--label-drop", type=float, default=defaults.label_drop_rate, help="share of labels never sent"
    )
    p.add_argument("--decimals", type=int, default=defaults.decimals, help="decimals of numeric values")
    p.add_argument("--no-predictions", action="store_true", help="write an empty predictions.jsonl")
    p.add_argument("--no-labels", action="store_true", help="write an empty labels.jsonl")
    p.add_argument(
        "--drift",
        action="append",
        default=[],
        metavar="KIND[:FEATURE][:start=+S][:magnitude=M][:ramp=R][:category=C]",
        help="inject a drift (repeatable), e.g. mean_shift:num_00:start=+600:magnitude=0.5",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        spec = synthetic_spec.StreamSpec(
            model_id=args.model_id,
            n_numeric=args.numeric,
            n_categorical=args.categorical,
            events_per_second=args.rate,
            start_ts=args.start_ts,
            correlated_pairs=args.pairs,
            null_rate=args.null_rate,
            label_delay_mean_s=args.label_delay,
            label_drop_rate=args.label_drop,
            with_predictions=not args.no_predictions,
            with_labels=not args.no_labels,
            seed=args.seed,
            decimals=args.decimals,
        )
        drifts = [synthetic_spec.parse_drift(text, spec.start_ts) for text in args.drift]
        stream = synthetic.generate(spec, args.events, drifts)
    except ValueError as exc:
        parser.error(str(exc))
    paths = synthetic_jsonl.write_jsonl(stream, args.out)
    ts = stream.timestamps()
    summary = {
        "out": {name: str(path) for name, path in paths.items()},
        "counts": {
            "features": len(stream.features),
            "predictions": len(stream.predictions),
            "labels": len(stream.labels),
        },
        "first_ts": float(ts[0]) if len(ts) else None,
        "last_ts": float(ts[-1]) if len(ts) else None,
        "spec": spec,
        "drifts": list(stream.drifts),
    }
    sys.stdout.buffer.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
