"""What is monitored for one model: its signals, in sketch order, derived from its profile and config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stream_monitor.config.schema import DriftTest, ModelConfig, SeasonalityConfig
from stream_monitor.core.envelope import FieldPaths
from stream_monitor.core.errors import ConfigError
from stream_monitor.core.outcome_parsing import positive_class
from stream_monitor.stats.correlation import normal_scores
from stream_monitor.stats.phase_profiles import PhaseTable, SeasonalityProfile
from stream_monitor.stats.profiles import CategoricalProfile, ModelProfile, NumericProfile
from stream_monitor.stats.sketch_layout import CategoricalSignal, NumericSignal, SketchLayout

MULTIVARIATE_SIGNAL = "feature_correlations"


def _numeric(profile: ModelProfile, name: str) -> NumericProfile:
    prof = profile.features[name]
    if not isinstance(prof, NumericProfile):
        raise ConfigError([(f"reference.{name}", "a correlated feature must be numeric")])
    return prof


@dataclass(frozen=True)
class CorrelationInputs:
    """Which numeric columns enter the correlation test, and what of them is correlated: each value's bin
    score (rank-based, see :func:`stream_monitor.stats.correlation.normal_scores`), or for a reference built
    before those, the standardised value."""

    columns: NDArray[np.intp]  # positions among the numeric feature columns
    mean: NDArray[np.float64]
    std: NDArray[np.float64]
    scores: NDArray[np.float64] | None = None  # (columns, bins): score per bin of each column; None: values
    # what the window's correlations are compared with: the reference's, or its within-phase correlations
    # when a correlated feature has a seasonality (a shared cycle inflates the whole reference's)
    reference: NDArray[np.float64] | None = None
    within_phase_of: float | None = None  # the period of those within-phase correlations

    def standardise(
        self, numeric: NDArray[np.float64], codes: NDArray[np.int8], bins: NDArray[np.int8] | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """What to correlate, and where it is valid; ``bins`` are the values' bins (all numeric columns)."""
        valid = codes[:, self.columns] == 0
        if self.scores is None or bins is None:
            return (numeric[:, self.columns] - self.mean) / self.std, valid
        rows = np.arange(len(self.columns))
        return self.scores[rows, bins[:, self.columns]], valid


@dataclass(frozen=True)
class ModelLayout:
    model_id: str
    config: ModelConfig
    profile: ModelProfile
    sketch: SketchLayout
    numeric_features: tuple[str, ...]
    categorical_features: tuple[str, ...]
    boolean_features: tuple[str, ...]
    disabled_features: tuple[str, ...]  # in the reference but disabled in the config: known, not monitored
    categories: dict[str, tuple[Any, ...]]
    correlation: CorrelationInputs | None
    score_index: int | None
    prediction_numeric_index: int | None  # regression models
    prediction_categorical_index: int | None  # classifiers
    classes: tuple[Any, ...] | None  # None for regression
    positive_class: Any  # a binary classifier's class that score is the probability of; None otherwise
    paths: FieldPaths
    segment_columns: tuple[int, ...]  # positions of the segment features among the categorical features
    # feature -> the reference's phase table of its configured cycle (features with seasonality only)
    phase_tables: dict[str, PhaseTable] = field(default_factory=dict)
    # the phase tables of the cycles the score and prediction are judged by (none: by the whole reference)
    outcome_phase_tables: tuple[PhaseTable, ...] = ()

    def test_for(self, role: str, name: str) -> DriftTest:
        cfg = self.config
        own = cfg.features[name].test if role == "feature" and name in cfg.features else None
        if own is not None:
            return own
        if role in ("prediction", "score"):
            return cfg.prediction.test
        return cfg.default_test

    def feature_enabled(self, name: str) -> bool:
        fc = self.config.features.get(name)
        return fc is None or fc.enabled

    @classmethod
    def build(cls, model_id: str, config: ModelConfig, profile: ModelProfile) -> ModelLayout:
        unknown = sorted(set(config.features) - set(profile.features))
        if unknown:
            raise ConfigError(
                [
                    (f"models.{model_id}.features.{n}", "not a feature of the reference profile")
                    for n in unknown
                ]
            )
        numeric: list[NumericSignal] = []
        categorical: list[CategoricalSignal] = []
        num_names: list[str] = []
        cat_names: list[str] = []
        bool_names: list[str] = []
        disabled: list[str] = []
        for name, prof in profile.features.items():
            fc = config.features.get(name)
            if fc is not None and not fc.enabled:
                disabled.append(name)
                continue
            if isinstance(prof, NumericProfile):
                numeric.append(NumericSignal(name, "feature", prof))
                num_names.append(name)
            else:
                categorical.append(CategoricalSignal(name, "feature", prof))
                cat_names.append(name)
                if prof.type == "boolean":
                    bool_names.append(name)
        phase_tables = _phase_tables(model_id, config, profile, num_names, cat_names)
        correlation = None
        mv = profile.multivariate
        if config.multivariate.enabled and mv is not None:
            present = [k for k, n in enumerate(mv.features) if n in num_names]
            if len(present) >= 2:
                names = [mv.features[k] for k in present]
                scores = None
                if mv.method == "normal_scores":
                    tables = [normal_scores(_numeric(profile, n).counts) for n in names]
                    scores = np.zeros((len(tables), max(map(len, tables))))
                    for k, table in enumerate(tables):
                        scores[k, : len(table)] = table
                        scores[k, len(table) :] = table[-1]  # never reached: bins past a column's own
                cyclic = [phase_tables[n] for n in names if n in phase_tables]
                within = next((t for t in cyclic if t.correlation is not None), None)
                correlation = CorrelationInputs(
                    columns=np.array([num_names.index(n) for n in names], dtype=np.intp),
                    mean=mv.mean[present],
                    std=mv.std[present],
                    scores=scores,
                    reference=mv.correlation[np.ix_(present, present)]
                    if within is None or within.correlation is None
                    else within.correlation[np.ix_(present, present)],
                    within_phase_of=None if within is None else within.period_seconds,
                )
        score_index = pred_num = pred_cat = None
        classes: tuple[Any, ...] | None = None
        preds = profile.predictions
        if preds is not None and config.prediction.enabled:
            if preds.score is not None:
                score_index = len(numeric)
                numeric.append(NumericSignal("score", "score", preds.score))
            if isinstance(preds.prediction, NumericProfile):
                pred_num = len(numeric)
                numeric.append(NumericSignal("prediction", "prediction", preds.prediction))
            else:
                assert isinstance(preds.prediction, CategoricalProfile)
                pred_cat = len(categorical)
                categorical.append(CategoricalSignal("prediction", "prediction", preds.prediction))
                classes = preds.prediction.categories
        elif preds is not None and preds.task == "classification":
            assert isinstance(preds.prediction, CategoricalProfile)
            classes = preds.prediction.categories
        positive = _positive_class(model_id, config, classes)
        bad_segments = [s for s in config.segments if s not in cat_names]
        if bad_segments:
            raise ConfigError(
                [
                    (f"models.{model_id}.segments", f"{s!r} is not an enabled categorical feature")
                    for s in bad_segments
                ]
            )
        if config.segments and classes is None:
            raise ConfigError(
                [(f"models.{model_id}.segments", "segments need a classifier (error rates per value)")]
            )
        return cls(
            model_id=model_id,
            config=config,
            profile=profile,
            sketch=SketchLayout(
                numeric, categorical, multivariate_width=len(correlation.columns) if correlation else 0
            ),
            numeric_features=tuple(num_names),
            categorical_features=tuple(cat_names),
            boolean_features=tuple(bool_names),
            disabled_features=tuple(disabled),
            categories={s.name: s.profile.categories for s in categorical if s.role == "feature"},
            correlation=correlation,
            score_index=score_index,
            prediction_numeric_index=pred_num,
            prediction_categorical_index=pred_cat,
            classes=classes,
            positive_class=positive,
            paths=field_paths(config),
            segment_columns=tuple(cat_names.index(s) for s in config.segments),
            phase_tables=phase_tables,
            outcome_phase_tables=_outcome_phase_tables(model_id, config, profile)
            if score_index is not None or pred_num is not None or pred_cat is not None
            else (),
        )


def field_paths(config: ModelConfig) -> FieldPaths:
    """Where a model's fields live in its events (``fields:`` of its config)."""
    return FieldPaths(model_id="model_id", **config.fields.model_dump())


def _positive_class(model_id: str, config: ModelConfig, classes: tuple[Any, ...] | None) -> Any:
    """A binary classifier's positive class (configured, else the larger); a setting that fits no binary
    classifier of the reference is a problem with its path."""
    binary = classes is not None and len(classes) == 2
    if config.positive_class is not None and not binary:
        n = "no" if classes is None else len(classes)
        where = f"models.{model_id}.positive_class"
        raise ConfigError(
            [(where, f"only for a binary classifier; the reference's predictions have {n} classes")]
        )
    if classes is None or not binary:
        return None
    try:
        return positive_class(classes, config.positive_class)
    except ValueError as exc:
        raise ConfigError([(f"models.{model_id}.positive_class", str(exc))]) from None


def _phase_tables(
    model_id: str, config: ModelConfig, profile: ModelProfile, numeric: list[str], categorical: list[str]
) -> dict[str, PhaseTable]:
    """Each monitored feature's configured cycle, as the reference's phase table of it; every setting the
    reference cannot serve is a problem with its path, but for a categorical feature given the model's cycle
    by a reference built before categorical phase profiles (it is judged by its whole profile)."""
    problems: list[tuple[str, str]] = []
    tables: dict[str, PhaseTable] = {}
    said: set[str] = set()  # a model-wide setting the reference cannot serve: one problem, not one a feature
    season = profile.seasonality
    for name in numeric + categorical:
        cycle = config.seasonality_of(name)
        if cycle is None:
            continue
        own = name in config.features and config.features[name].seasonality is not None
        table = season.table(cycle.period_seconds) if season is not None else None
        if not own and name in categorical and (table is None or name not in table.features):
            continue
        where = f"models.{model_id}." + (f"features.{name}.seasonality" if own else "seasonality")
        if where in said:
            continue
        problem = _unserved(table, cycle, name in table.features if table else False, season, name, own)
        if problem is not None:
            problems.append((where, problem))
            said.add(where)
            continue
        assert table is not None
        tables[name] = table.coarsen(cycle.phases)
    if problems:
        raise ConfigError(problems)
    return tables


def _outcome_phase_tables(
    model_id: str, config: ModelConfig, profile: ModelProfile
) -> tuple[PhaseTable, ...]:
    """The phase tables of the score's and prediction's cycles. A cycle the model's setting gives them but the
    reference has no outcome profiles of (a reference built before them) leaves them judged by the whole
    reference; their own setting must be served."""
    cycles, own = config.outcome_seasonality()
    season = profile.seasonality
    tables, problems = [], []
    for cycle in cycles:
        table = season.table(cycle.period_seconds) if season is not None else None
        problem = _unserved(table, cycle, bool(table and table.predictions), season, "the predictions", True)
        if problem is None:
            assert table is not None
            tables.append(table.coarsen(cycle.phases))
        else:
            problems.append((f"models.{model_id}.prediction.seasonality", problem))
    if problems and own:
        raise ConfigError(problems)
    return tuple(tables) if not problems else ()


def _unserved(
    table: PhaseTable | None,
    cycle: SeasonalityConfig,
    has_signal: bool,
    season: SeasonalityProfile | None,
    what: str,
    own: bool,
) -> str | None:
    """Why the reference's ``table`` cannot serve ``cycle`` for a signal (None: it can)."""
    if table is None or not has_signal:
        has = ", ".join(f"{t.period_seconds:g} s" for t in season.tables) if season else ""
        return (
            f"the reference has no phase profiles{f' of {what}' if own else ''} for a "
            f"{cycle.period_seconds:g} s cycle (it has: {has or 'none'}); rebuild it with `reference build "
            f"--period {cycle.period_seconds:g}`"
        )
    if table.phases % cycle.phases:
        return f"{cycle.phases} phases do not divide the reference's {table.phases} for this cycle"
    return None
