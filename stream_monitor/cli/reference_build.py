"""``stream-monitor reference build``: a reference profile from the data the model was trained on."""

from __future__ import annotations

from pathlib import Path

import click

from stream_monitor.cli.exits import _fail
from stream_monitor.core.errors import StreamMonitorError
from stream_monitor.stats.phase_mixture import THIN_PHASE_VALUES
from stream_monitor.stats.phase_profiles import SeasonalityProfile


@click.group()
def reference() -> None:
    """Reference profiles: what normal looks like."""


@reference.command("build")
@click.option(
    "--features", "features", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True
)
@click.option("--predictions", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--bins", default=20, show_default=True, help="quantile bins per numeric feature")
@click.option("--top-k", default=50, show_default=True, help="categories kept per categorical feature")
@click.option(
    "--max-rows",
    default=100_000,
    show_default=True,
    help="reservoir size per model for quantiles and correlations",
)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--period",
    "periods",
    type=float,
    multiple=True,
    help="also keep phase profiles of this cycle (seconds; repeatable), found or not",
)
@click.option("--phases", default=24, show_default=True, help="phases per cycle in the phase profiles")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="read each model's events with its fields, timestamp_format and positive_class (its reference "
    "file need not exist yet)",
)
def reference_build(
    features: Path,
    predictions: Path | None,
    labels: Path | None,
    out: Path,
    bins: int,
    top_k: int,
    max_rows: int,
    seed: int,
    periods: tuple[float, ...],
    phases: int,
    config_path: Path | None,
) -> None:
    """Build a reference profile from the data the model was trained or validated on."""
    from stream_monitor.adapters.files.jsonl import read_jsonl_events
    from stream_monitor.adapters.files.reference_file import save_reference
    from stream_monitor.app.compose import event_formats
    from stream_monitor.config.loading import load_config
    from stream_monitor.stats.reference_builder import ReferenceBuilder

    formats, model_id_field = None, "model_id"
    if config_path is not None:
        try:
            config = load_config(config_path)
        except StreamMonitorError as exc:
            _fail(exc)
        formats, model_id_field = event_formats(config), config.service.model_id_field
    try:
        builder = ReferenceBuilder(
            bins=bins,
            top_k=top_k,
            max_rows=max_rows,
            seed=seed,
            periods=periods,
            phases=phases,
            formats=formats,
            model_id_field=model_id_field,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    bad: dict[str, int] = {}
    builder.add_features(read_jsonl_events(features, bad))
    if predictions:
        builder.add_predictions(read_jsonl_events(predictions, bad))
    if labels:
        builder.add_labels(read_jsonl_events(labels, bad))
    try:
        profile = builder.build()
    except StreamMonitorError as exc:
        _echo_skipped({**bad, **builder.skipped})  # they say why nothing was usable
        _fail(exc)
    save_reference(profile, out)
    _echo_skipped({**bad, **builder.skipped})
    for model_id, m in profile.models.items():
        kinds: dict[str, int] = {}
        for p in m.features.values():
            kinds[p.type] = kinds.get(p.type, 0) + 1
        summary = ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))
        click.echo(
            f"{model_id}: {m.events} events, {summary} features"
            f"{', predictions' if m.predictions else ''}{', labels' if m.labels else ''}"
        )
        if m.seasonality is not None:
            found = [
                f"{f.signal} every {f.period_seconds:g} s (r {f.autocorrelation:.2f})"
                for f in m.seasonality.found
            ]
            click.echo(f"{model_id}: cycles: {'; '.join(found) or 'none found'}")
            for line in thin_phase_notes(m.seasonality):
                click.echo(f"{model_id}: {line}")
    click.echo(f"wrote {out}")


def _echo_skipped(skipped: dict[str, int]) -> None:
    for reason, count in sorted(skipped.items()):
        click.echo(f"skipped {count} event(s): {reason}", err=True)


def thin_phase_notes(season: SeasonalityProfile) -> list[str]:
    """A line per phase table whose fewest values in a phase (of any signal) are below ``THIN_PHASE_VALUES``."""
    notes = []
    for table in season.tables:
        signals = {**table.features, **{f"the {k}": v for k, v in table.predictions.items()}}
        if not signals:
            continue
        name, fewest = min(((n, int(pc.values.min())) for n, pc in signals.items()), key=lambda t: t[1])
        if fewest < THIN_PHASE_VALUES:
            notes.append(
                f"thin phase profiles for the {table.period_seconds:g} s cycle: as few as {fewest} values of "
                f"{name} in one of its {table.phases} phases (under {THIN_PHASE_VALUES}); they are shrunk "
                "toward their neighbours, which costs power: use a longer reference or fewer --phases"
            )
    return notes
