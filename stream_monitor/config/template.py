"""``stream-monitor config init``: a complete, commented config for every model and feature of a reference."""

from __future__ import annotations

import math
from pathlib import Path

from stream_monitor.adapters.files.reference_file import load_reference
from stream_monitor.config.join_sizing import BYTES_PER_OUTSTANDING, DEFAULT_SLA_SECONDS, join_sizing
from stream_monitor.config.schema import DEFAULT_FLOORS
from stream_monitor.core.outcome_parsing import positive_class
from stream_monitor.stats.profiles import CategoricalProfile, ModelProfile, NumericProfile, ReferenceProfile
from stream_monitor.stats.seasonality import OUTCOME_SIGNAL_PREFIX


def window_defaults(events_per_second: float) -> tuple[int, float]:
    """About 30 s of traffic per window on a busy stream (2k..50k events), at most 5 minutes on a quiet one."""
    if events_per_second <= 0:
        return 5000, 300.0
    events = int(min(max(events_per_second * 30.0, 2000.0), 50_000.0))
    return int(math.ceil(events / 1000.0) * 1000), 300.0


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _feature_comment(prof: NumericProfile | CategoricalProfile) -> str:
    if isinstance(prof, NumericProfile):
        return (
            f"numeric: mean {prof.mean:.4g}, sd {prof.std:.4g}, range [{prof.min:.4g}, {prof.max:.4g}], "
            f"{prof.n_bins} bins, {prof.null_rate:.1%} null"
        )
    cats = ", ".join(repr(c) for c in prof.categories[:5])
    more = f" (+{len(prof.categories) - 5} more)" if len(prof.categories) > 5 else ""
    return f"{prof.type}: {len(prof.categories)} categories: {cats}{more}; {prof.null_rate:.1%} null"


def feature_cycle(prof: ModelProfile, feature: str) -> tuple[float, int, float] | None:
    """The clearest cycle ``reference build`` found in a feature and kept phase profiles of: period, phases
    and autocorrelation (None when it found none)."""
    season = prof.seasonality
    if season is None:
        return None
    found = sorted((f for f in season.found if f.signal == feature), key=lambda f: -f.autocorrelation)
    for f in found:
        table = season.table(f.period_seconds)
        if table is not None and feature in table.features:
            return f.period_seconds, table.phases, f.autocorrelation
    return None


def _positive_class_lines(prof: ModelProfile) -> list[str]:
    """A binary classifier's positive class, as the monitor reads it unless told otherwise."""
    preds = prof.predictions
    if preds is None or not isinstance(preds.prediction, CategoricalProfile):
        return []
    classes = preds.prediction.categories
    if len(classes) != 2:
        return []
    positive = positive_class(classes)
    text = _q(positive) if type(positive) is str else str(positive).lower()
    return [
        "    # The class whose probability `score` is (and whose key is read from `scores`).",
        f"    positive_class: {text}",
    ]


def outcome_cycles(prof: ModelProfile) -> list[tuple[float, int, list[str]]]:
    """The cycles the score and prediction are judged by, jointly: every one ``reference build`` found in
    them or in a feature (they inherit their features' cycles) and kept outcome phase profiles of, shortest
    first, with its phases and the signals it was found in."""
    season = prof.seasonality
    if season is None or prof.predictions is None:
        return []
    out = []
    for table in sorted(season.tables, key=lambda t: t.period_seconds):
        signals = [
            f.signal
            for f in season.found
            if abs(f.period_seconds - table.period_seconds) < 1e-6
            and (f.signal in prof.features or f.signal.startswith(OUTCOME_SIGNAL_PREFIX))
        ]
        if signals and table.predictions:
            out.append((table.period_seconds, table.phases, signals))
    return out


def _outcome_seasonality_lines(prof: ModelProfile) -> list[str]:
    cycles = outcome_cycles(prof)
    if not cycles:
        return ["      seasonality: off                 # no cycle found in the predictions or the features"]
    lines = [
        "      # the cycles the predictions inherit, judged jointly (docs/configuration.md)",
        "      seasonality:",
    ]
    for period, phases, signals in cycles:
        lines.append(
            f"        - {{period_seconds: {period:g}, phases: {phases}}}   # found in {', '.join(signals)}"
        )
    return lines


def _seasonality_lines(prof: ModelProfile) -> list[str]:
    season = prof.seasonality
    if season is None:
        said = "the reference was built without event times (or before cycles were looked for)"
    else:
        cyclic = [n for n in prof.features if feature_cycle(prof, n) is not None]
        rate = ", ".join(f"{p:g} s" for p in season.periods_of("event_rate")) or "none"
        said = f"cycles found in {len(cyclic)} feature(s) (set on each below); in the event rate: {rate}"
    return [
        "    # Recurring cycles: a feature with one is compared with the reference's profile of the phases",
        "    # each window covers, e.g. {period_seconds: 86400, phases: 24}. The model's setting applies to",
        "    # every feature without its own (and to the predictions without theirs); off: none.",
        f"    # reference build: {said}.",
        "    seasonality: off",
    ]


def label_rate(prof: ModelProfile) -> float:
    """Labels per second of event time in the reference (0 when it has none or cannot tell)."""
    if prof.labels is None or prof.events <= 0:
        return 0.0
    return prof.events_per_second * prof.labels.events / prof.events


def performance_window_default(prof: ModelProfile) -> int:
    """2,000 labelled predictions a window, fewer (at least 500) when labels are too slow to fill that in
    15 minutes: the windowed accuracy test needs about that many to see a 2-point drop."""
    rate = label_rate(prof)
    if rate <= 0:
        return 2000
    return int(min(max(round(rate * 900.0, -2), 500), 2000))


def _label_rate_text(prof: ModelProfile) -> str:
    rate = label_rate(prof)
    return f"{rate:.3g} labels/s" if rate > 0 else "unknown label rate"


def _labels_block(prof: ModelProfile) -> list[str]:
    """``ttl_seconds`` and ``max_outstanding``, sized from the reference's prediction rate and label lags."""

    def key(name: str, value: object, comment: str) -> str:
        return f"      {f'{name}: {value}':<33}# {comment}"

    if prof.labels is None or prof.predictions is None:
        return [
            "      # The reference has no labels (or no predictions): no prediction is held for a join.",
            key("ttl_seconds", f"{DEFAULT_SLA_SECONDS:.0f}", "predictions wait this long for their label"),
            key("max_outstanding", 1000, "beyond it the oldest are evicted (counted)"),
        ]
    rate = prof.events_per_second * prof.predictions.events / prof.events if prof.events > 0 else 0.0
    sizing = join_sizing(rate, prof.labels.labelled_share, prof.labels.lag_seconds.get("p99"))
    if sizing.lag_p99 is None or sizing.labelled_share is None:
        how = [
            f"no label lags in the reference, so each may wait the whole TTL ({sizing.ttl_seconds:.0f} s):"
        ]
    else:
        how = [
            f"{sizing.labelled_share:.0%} labelled within a p99 lag of {sizing.lag_p99:.3g} s,",
            "      # the rest waiting the TTL:",
        ]
    return [
        f"      # Sized from the reference: {sizing.predictions_per_second:.4g} predictions/s, {how[0]}",
        *how[1:],
        f"      # about {sizing.expected_outstanding:,.0f} waiting. The cap is 1.5x that: "
        f"{sizing.mib:,.1f} MiB at ~{BYTES_PER_OUTSTANDING} bytes each",
        "      # (stream_monitor_join_bytes_per_prediction on /metrics shows the live figure).",
        key("ttl_seconds", f"{sizing.ttl_seconds:.0f}", "predictions wait this long for their label"),
        key("max_outstanding", sizing.max_outstanding, "beyond it the oldest are evicted (counted)"),
    ]


def _window_span_text(prof: ModelProfile, labelled: int) -> str:
    rate = label_rate(prof)
    if rate <= 0:
        return "an unknown time (at most bucket_seconds)"
    return f"about {min(labelled / rate, 900.0):.0f} s"


def _model_block(model_id: str, prof: ModelProfile, reference: str) -> list[str]:
    max_events, max_seconds = window_defaults(prof.events_per_second)
    window_labelled = performance_window_default(prof)
    w, c = DEFAULT_FLOORS["psi"]
    lines = [
        f"  {_q(model_id)}:",
        f"    # Reference: {prof.events} feature events at {prof.events_per_second:.4g} events/s.",
        f"    reference: {_q(reference)}",
        "    # Where each field lives in an event (dotted paths).",
        "    fields: {event_id: event_id, ts: ts, features: features, prediction: prediction, score: score,",
        "             scores: scores, label: label}",
        "    # auto | epoch_seconds | epoch_millis | iso8601 (auto: numbers above 1e11 are milliseconds)",
        "    timestamp_format: auto",
        *_positive_class_lines(prof),
        "    # A window closes at max_events or max_seconds of event time, whichever comes first.",
        "    window:",
        f"      max_events: {max_events}",
        f"      max_seconds: {max_seconds:g}",
        "      allowed_lateness_seconds: 30     # events later than this are dead-lettered as late_event",
        "      max_future_seconds: 300          # events further ahead of the clock: dead-lettered as future_timestamp",
        "      min_events: 200                  # smaller windows are summarised but not tested",
        "    # The false-alarm budget is per model, across all its features and tests.",
        "    budget:",
        "      false_alerts_per_day: 0.1        # about one false alert in ten days with no real drift",
        "    # calibrated: thresholds fit the window's size and the budget, never below the levels below.",
        "    # fixed: the levels below are the thresholds, whatever the window's size.",
        "    thresholds: calibrated",
        "    # statistic: psi | js | ks | wasserstein | chi2 (ks and wasserstein: numeric signals only).",
        f"    default_test: {{statistic: psi, warning: {w}, critical: {c}}}",
        "    sequential:                        # two-sided CUSUM on window means: catches slow ramps",
        "      enabled: true",
        "      min_effect_sd: 0.05              # mean shifts smaller than this never alert",
        "    multivariate:                      # pairwise correlation changes (Fisher z, Bonferroni over pairs)",
        f"      enabled: {'true' if prof.multivariate else 'false'}",
        "      min_change_warning: 0.15         # smallest change of a correlation coefficient that may alert",
        "      min_change_critical: 0.3",
        "    prediction:                        # score distribution and predicted-class balance",
        f"      enabled: {'true' if prof.predictions else 'false'}",
        f"      test: {{statistic: psi, warning: {w}, critical: {c}}}",
        *_outcome_seasonality_lines(prof),
        "    data_quality:                      # rises over the reference's own rates",
        "      enabled: true",
        "      null_rate_warning: 0.05",
        "      null_rate_critical: 0.2",
        "      wrong_type_warning: 0.01",
        "      wrong_type_critical: 0.05",
        "      new_category_warning: 0.01",
        "      new_category_critical: 0.05",
        "      range_warning: 0.01",
        "      range_critical: 0.05",
        "    alerting:",
        "      resolve_after_windows: 2         # clean windows in a row before 'resolved'",
        "      hysteresis: 0.8                  # clean = below 0.8 x the warning level",
        "      cooldown_seconds: 900            # event time before a resolved signal may fire again",
        "    labels:",
        *_labels_block(prof),
        "      freshness_sla_seconds: 172800    # labels older than this are counted as stale, not used",
        "      min_coverage: 0.5",
        "    performance:                       # concept drift from labels (and CBPE before them)",
        f"      # At the reference's {_label_rate_text(prof)} a window of {window_labelled} labelled predictions",
        f"      # spans {_window_span_text(prof, window_labelled)} of predictions.",
        f"      window_labelled: {window_labelled}            # a window closes at this many expected labels,",
        "      bucket_seconds: 900              # or after this much prediction time; label health per bucket",
        "      accuracy_drop_warning: 0.02",
        "      accuracy_drop_critical: 0.05",
        "      # sequential test of each label's error bit, alerting when it fires; cusum is budgeted, the",
        "      # others are River's: ddm | eddm | hddm_a | hddm_w | fhddm | adwin | page_hinkley (or none)",
        "      error_stream_detector: cusum",
        "      segment_spread_warning: 0.01     # a segment's error rate above the others', beyond the reference gap",
        "      segment_spread_critical: 0.03",
        "    segments: []                       # categorical features with per-value error rates, e.g. [plan]",
        *_seasonality_lines(prof),
        "    features:",
    ]
    for name, fprof in prof.features.items():
        stat = "psi"
        lines.append(f"      # {_feature_comment(fprof)}")
        sequential = "true" if isinstance(fprof, NumericProfile) else "false"
        cycle = feature_cycle(prof, name)
        season = ""
        if cycle is not None:
            period, phases, acf = cycle
            lines.append(f"      # repeats every {period:g} s (autocorrelation {acf:.2f} at that lag)")
            season = f", seasonality: {{period_seconds: {period:g}, phases: {phases}}}"
        lines.append(
            f"      {_q(name)}: {{enabled: true, sequential: {sequential}, test: {{statistic: {stat}}}{season}}}"
        )
    if not prof.features:
        lines[-1] = "    features: {}"
    return lines


def render_config(reference: ReferenceProfile, reference_path: str) -> str:
    out = [
        "# stream-monitor configuration (generated by `stream-monitor config init`).",
        "# Check it with `stream-monitor config validate FILE`; every key is documented in docs/configuration.md.",
        "version: 1",
        "kafka:",
        '  bootstrap_servers: "127.0.0.1:9092"',
        "  # librdkafka settings passed through unchanged, e.g. security.protocol: SASL_SSL,",
        '  # sasl.mechanism: SCRAM-SHA-512, sasl.username: monitor, sasl.password: "${KAFKA_PASSWORD}"',
        "  client: {}",
        "topics:",
        "  features: features",
        "  predictions: predictions",
        "  labels: labels",
        "  features_batch: features-batch",
        "  alerts: drift-alerts",
        "  dlq: stream-monitor-dlq",
        "  partials: stream-monitor-partials   # internal: partial window sketches, stage 1 -> stage 2",
        "  state: stream-monitor-state         # internal, compacted: state snapshots of every partition",
        "  retraining: null                   # a topic name to publish retraining requests on critical concept drift",
        "  window_stats: null                 # a topic name for every tested window's statistics (dashboards)",
        "  partitions: 3",
        "  replication_factor: 1",
        "service:",
        "  bind_host: 127.0.0.1                 # /metrics, /healthz, /readyz",
        "  metrics_port: 9108",
        "  consumer_group: stream-monitor",
        "  max_message_bytes: 1048576",
        "  model_id_field: model_id",
        "  batch_max_events: 20000             # messages per consume call; larger batches cost less per event",
        "  max_label_cardinality: 2000         # distinct label sets per metric family; beyond: an overflow series",
        "  snapshot_seconds: 5                 # state snapshot (and commit) period per partition",
        "  idle_partition_seconds: 10          # a partition with no events this long stops holding windows back",
        "models:",
    ]
    for model_id, prof in reference.models.items():
        out.extend(_model_block(model_id, prof, reference_path))
    return "\n".join(out) + "\n"


def write_config(reference_file: Path, out: Path) -> str:
    reference = load_reference(reference_file)
    try:
        rel = str(reference_file.resolve().relative_to(out.resolve().parent))
    except ValueError:
        rel = str(reference_file.resolve())
    text = render_config(reference, rel)
    out.write_text(text, encoding="utf-8")
    return text
