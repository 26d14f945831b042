"""Training, evaluation, saving and loading of calibrated models (scikit-learn, no Django).

Pipeline: features (``features.feature_matrix``) -> base classifier (HistGradientBoosting
or standardised logistic regression) -> probability calibration (``CalibratedClassifierCV``
on a frozen base model, sigmoid or isotonic) fitted on the LAST ``calib_fraction`` of each
training window, after an embargo, so calibration data is always later than fitting data
and earlier than the test window.

Walk-forward: ``n_folds`` expanding (or rolling) folds, each tested on ``test_size`` rows
after an ``embargo`` of ``horizon`` rows. The registered model is the last fold's model; its
test window is the held-out window, where every metric (log loss, Brier, ECE, AUC, the
same model uncalibrated, and the strategy's backtest P&L) is measured. Earlier folds'
metrics are kept for the record.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import joblib
import numpy as np

from apps.ml.domain import calibration as cal
from apps.ml.domain.drift import psi_reference
from apps.ml.domain.errors import ModelIntegrityError, TrainingDataError
from apps.ml.domain.features import FEATURE_NAMES, WINDOW, BarArrays, feature_matrix, gap_positions
from apps.ml.domain.labels import label_exceeds_cost
from apps.ml.domain.walkforward import Fold, walk_forward_splits

ALGORITHMS = ("hgb", "logreg")
CALIBRATIONS = ("sigmoid", "isotonic")
BUNDLE_FORMAT = 1


@dataclass(frozen=True)
class TrainConfig:
    algorithm: str = "hgb"
    calibration: str = "sigmoid"
    horizon: int = 30  # bars ahead the label looks
    fee_rate: float = 0.001  # per fill; the round trip costs 2 x (fee + slippage)
    slippage: float = 0.0
    n_folds: int = 3
    test_size: int = 15000
    min_train: int = 5000
    mode: str = "expanding"
    train_size: int | None = None
    stride: int = 3  # fit on every stride-th training row (labels overlap anyway)
    calib_fraction: float = 0.25
    n_bins: int = cal.DEFAULT_BINS
    seed: int = 0

    @property
    def cost(self) -> float:
        return 2.0 * (self.fee_rate + self.slippage)

    @property
    def embargo(self) -> int:
        return self.horizon

    def validate(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise TrainingDataError(
                f"unknown algorithm {self.algorithm!r}; choose one of {', '.join(ALGORITHMS)}"
            )
        if self.calibration not in CALIBRATIONS:
            raise TrainingDataError(
                f"unknown calibration {self.calibration!r}; choose one of {', '.join(CALIBRATIONS)}"
            )
        if self.horizon < 1 or self.stride < 1 or not 0 < self.calib_fraction < 1:
            raise TrainingDataError("horizon and stride must be >= 1 and calib_fraction in (0, 1)")

    def params(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModelBundle:
    """What is saved in a model file (joblib)."""

    model: Any  # calibrated classifier: predict_proba(X)[:, 1]
    uncalibrated: Any
    feature_names: tuple[str, ...]
    config: dict[str, Any]
    format: int = BUNDLE_FORMAT

    @property
    def horizon(self) -> int:
        return int(self.config["horizon"])

    @property
    def cost(self) -> float:
        return 2.0 * (float(self.config["fee_rate"]) + float(self.config["slippage"]))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        proba: np.ndarray = self.model.predict_proba(x)[:, 1]
        return proba

    def predictor(self) -> Callable[[np.ndarray], float]:
        """One feature vector -> probability, for the live path (one row per bar).

        HistGradientBoosting + sigmoid calibration is compiled into flat node arrays and
        evaluated with a few vectorised steps (``FastHgbSigmoid``: the same trees, the
        same sigmoid; equal to ``predict_proba`` to 1e-12, checked in the tests), since
        scikit-learn's per-call overhead alone is about 1 ms per row. Other models go
        through scikit-learn with its input checks skipped.
        """
        fast = FastHgbSigmoid.build(self.model)
        if fast is not None:
            return fast
        import sklearn

        model = self.model

        def predict(x: np.ndarray) -> float:
            with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
                return float(model.predict_proba(x.reshape(1, -1))[0, 1])

        return predict


class FastHgbSigmoid:
    """A frozen HistGradientBoostingClassifier + sigmoid calibrator for one row at a time.

    raw = baseline + sum over trees of the leaf value reached (numeric splits:
    x <= threshold goes left, NaN follows ``missing_go_to_left``); p = 1 / (1 + exp(a*raw + b)).
    """

    def __init__(
        self, nodes: dict[str, np.ndarray], roots: np.ndarray, baseline: float, a: float, b: float
    ) -> None:
        self.feature = nodes["feature_idx"]
        self.threshold = nodes["num_threshold"]
        self.left = nodes["left"]
        self.right = nodes["right"]
        self.leaf = nodes["is_leaf"]
        self.missing_left = nodes["missing_go_to_left"]
        self.value = nodes["value"]
        self.roots = roots
        self.baseline = baseline
        self.a = a
        self.b = b
        self.depth = int(nodes["depth"].max()) + 1

    @classmethod
    def build(cls, model: Any) -> FastHgbSigmoid | None:
        try:
            from sklearn.ensemble import HistGradientBoostingClassifier

            (calibrated,) = model.calibrated_classifiers_
            base = calibrated.estimator
            base = getattr(base, "estimator", base)  # FrozenEstimator
            (calibrator,) = calibrated.calibrators
            if calibrated.method != "sigmoid" or not isinstance(
                base, HistGradientBoostingClassifier
            ):
                return None
            if base.is_categorical_ is not None and np.any(base.is_categorical_):
                return None
            trees = [p[0].nodes for p in base._predictors]
        except (AttributeError, ValueError, TypeError):
            return None
        offsets = np.cumsum([0] + [len(t) for t in trees[:-1]])
        merged = np.concatenate(trees)
        # A structured dtype: its names are a tuple, never None.
        names = cast(tuple[str, ...], merged.dtype.names)
        nodes = {name: merged[name].copy() for name in names}
        nodes["feature_idx"] = nodes["feature_idx"].astype(np.intp)
        nodes["left"] = nodes["left"].astype(np.intp)
        nodes["right"] = nodes["right"].astype(np.intp)
        for i, t in enumerate(trees):
            sl = slice(offsets[i], offsets[i] + len(t))
            nodes["left"][sl] += offsets[i]
            nodes["right"][sl] += offsets[i]
        nodes["missing_go_to_left"] = nodes["missing_go_to_left"].astype(bool)
        nodes["is_leaf"] = nodes["is_leaf"].astype(bool)
        baseline = float(np.ravel(base._baseline_prediction)[0])
        return cls(
            nodes, offsets.astype(np.intp), baseline, float(calibrator.a_), float(calibrator.b_)
        )

    def raw(self, x: np.ndarray) -> float:
        node = self.roots
        for _ in range(self.depth):
            leaf = self.leaf[node]
            if leaf.all():
                break
            value = x[self.feature[node]]
            left = np.where(np.isnan(value), self.missing_left[node], value <= self.threshold[node])
            node = np.where(leaf, node, np.where(left, self.left[node], self.right[node]))
        return self.baseline + float(self.value[node].sum())

    def __call__(self, x: np.ndarray) -> float:
        return float(1.0 / (1.0 + np.exp(self.a * self.raw(x) + self.b)))


@dataclass
class FoldResult:
    fold: Fold
    metrics: dict[str, float]


@dataclass
class TrainResult:
    bundle: ModelBundle
    config: TrainConfig
    folds: list[FoldResult]
    heldout_metrics: dict[str, float]  # the registered model on its held-out window
    heldout_start: datetime
    heldout_end: datetime  # open time of the last held-out bar
    train_start: datetime
    train_end: datetime
    heldout_index: tuple[int, int]  # bar indexes [start, end) of the held-out window
    drift_reference: dict[str, dict[str, list[float]]]
    seconds: float
    rows: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _base_estimator(config: TrainConfig) -> Any:
    if config.algorithm == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            max_iter=150,
            learning_rate=0.05,
            max_leaf_nodes=31,
            min_samples_leaf=200,
            random_state=config.seed,
        )
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000))


def probability_metrics(p: np.ndarray, y: np.ndarray, n_bins: int) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    both = len(np.unique(y)) == 2
    return {
        "log_loss": cal.log_loss(p, y),
        "brier": cal.brier_score(p, y),
        "ece": cal.expected_calibration_error(p, y, n_bins),
        "ece_bins": float(n_bins),
        "auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "n": float(len(y)),
        "base_rate": float(np.mean(y)),
    }


def check_training_data(ts: Sequence[datetime], step: timedelta, config: TrainConfig) -> None:
    need = (
        WINDOW
        + config.min_train
        + config.embargo
        + config.n_folds * config.test_size
        + config.horizon
    )
    if len(ts) < need:
        raise TrainingDataError(
            f"too little data to train: {len(ts)} bars, need at least {need} "
            f"({WINDOW} warm-up + {config.min_train} training + {config.embargo} embargo + "
            f"{config.n_folds} x {config.test_size} test + {config.horizon} horizon); "
            f"give more bars or lower --folds/--test-size"
        )
    gaps = gap_positions(ts, step)
    if gaps:
        i = gaps[0]
        raise TrainingDataError(
            f"missing bars: {len(gaps)} gaps in the data, the first between "
            f"{ts[i - 1]:%Y-%m-%d %H:%M} and {ts[i]:%Y-%m-%d %H:%M} UTC; "
            f"train on a gap-free range (features and labels assume consecutive bars)"
        )


def _fit_fold(
    x: np.ndarray, y: np.ndarray, rows: np.ndarray, config: TrainConfig
) -> tuple[Any, Any]:
    """Fit the base model on the early part of ``rows`` and calibrate on the late part."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    cut = rows[int(len(rows) * (1 - config.calib_fraction))]
    fit_rows = rows[rows < cut - config.embargo][:: config.stride]
    cal_rows = rows[rows >= cut]
    for name, part in (("fitting", fit_rows), ("calibration", cal_rows)):
        if len(np.unique(y[part])) < 2:
            raise TrainingDataError(
                f"the {name} rows hold one class only; use more data or another horizon/cost"
            )
    base = _base_estimator(config).fit(x[fit_rows], y[fit_rows])
    # ensemble=False: one calibrator over the frozen base model (one base call per predict).
    calibrated = CalibratedClassifierCV(
        FrozenEstimator(base), method=config.calibration, ensemble=False
    )
    calibrated.fit(x[cal_rows], y[cal_rows])
    return calibrated, base


def train_model(
    arrays: BarArrays,
    ts: Sequence[datetime],
    config: TrainConfig,
    *,
    step: timedelta = timedelta(minutes=1),
    progress: Callable[[str], object] | None = None,
) -> TrainResult:
    """Walk-forward training; returns the last fold's calibrated model and its metrics.

    Raises
    ------
    TrainingDataError
        Too little data, missing bars, a constant feature, one class only, bad config.
    """
    started = time.perf_counter()
    config.validate()
    check_training_data(ts, step, config)
    x = feature_matrix(arrays)
    y = label_exceeds_cost(arrays.close, config.horizon, config.cost)
    valid = ~np.isnan(x).any(axis=1) & ~np.isnan(y)
    rows_all = np.flatnonzero(valid)
    first = int(rows_all[0])
    # Fold arithmetic on the valid span (bars WINDOW-1 .. n-horizon-1).
    folds_rel = walk_forward_splits(
        len(rows_all),
        n_folds=config.n_folds,
        test_size=config.test_size,
        embargo=config.embargo,
        min_train=config.min_train,
        mode=config.mode,
        train_size=config.train_size,
    )
    folds = [
        Fold(f.train_start + first, f.train_end + first, f.test_start + first, f.test_end + first)
        for f in folds_rel
    ]
    results: list[FoldResult] = []
    calibrated = base = None
    p_test = p_uncal = y_test = None
    for k, fold in enumerate(folds, 1):
        if progress:
            progress(f"fold {k}/{len(folds)}")
        train_rows = np.arange(fold.train_start, fold.train_end)
        std = np.std(x[train_rows], axis=0)
        constant = [FEATURE_NAMES[i] for i in np.flatnonzero(std == 0)]
        if constant:
            raise TrainingDataError(
                f"constant feature(s) in the training window: {', '.join(constant)}; "
                f"the data carries no information there (check the volume/price columns)"
            )
        calibrated, base = _fit_fold(x, y, train_rows, config)
        test_rows = np.arange(fold.test_start, fold.test_end)
        y_test = y[test_rows]
        p_test = calibrated.predict_proba(x[test_rows])[:, 1]
        p_uncal = base.predict_proba(x[test_rows])[:, 1]
        metrics = probability_metrics(p_test, y_test, config.n_bins)
        metrics["ece_uncalibrated"] = cal.expected_calibration_error(p_uncal, y_test, config.n_bins)
        metrics["log_loss_uncalibrated"] = cal.log_loss(p_uncal, y_test)
        results.append(FoldResult(fold, metrics))
    last = folds[-1]
    train_rows = np.arange(last.train_start, last.train_end)
    reference = {
        name: psi_reference(x[train_rows, i]).to_json() for i, name in enumerate(FEATURE_NAMES)
    }
    bundle = ModelBundle(
        model=calibrated, uncalibrated=base, feature_names=FEATURE_NAMES, config=config.params()
    )
    return TrainResult(
        bundle=bundle,
        config=config,
        folds=results,
        heldout_metrics=dict(results[-1].metrics),
        heldout_start=ts[last.test_start],
        heldout_end=ts[last.test_end - 1],
        train_start=ts[last.train_start - (WINDOW - 1)],
        train_end=ts[last.train_end - 1],
        heldout_index=(last.test_start, last.test_end),
        drift_reference=reference,
        seconds=time.perf_counter() - started,
        rows=len(ts),
    )


def evaluate(
    bundle: ModelBundle, arrays: BarArrays, start: int, end: int, n_bins: int
) -> dict[str, float]:
    """Metrics of ``bundle`` on bars [start, end) (features use the bars before ``start``)."""
    x = feature_matrix(arrays)
    y = label_exceeds_cost(arrays.close, bundle.horizon, bundle.cost)
    rows = np.arange(start, end)
    rows = rows[~np.isnan(x[rows]).any(axis=1) & ~np.isnan(y[rows])]
    if len(rows) == 0:
        raise TrainingDataError("no labelled rows in the evaluation window")
    return probability_metrics(bundle.predict_proba(x[rows]), y[rows], n_bins)


def data_hash(path: Path) -> str:
    return file_sha256(path)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def save_bundle(bundle: ModelBundle, path: Path) -> str:
    """Write the bundle with joblib and ``<path>.sha256`` beside it; return the sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    joblib.dump(bundle, buffer, compress=3)
    data = buffer.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    path.with_name(path.name + ".sha256").write_text(f"{sha}  {path.name}\n")
    return sha


def load_bundle(path: Path, expected_sha256: str | None = None) -> ModelBundle:
    """Load a model file after checking its sha256 (from the record, else the sidecar).

    The bytes are hashed BEFORE they are unpickled: a tampered file is never executed.

    Raises
    ------
    ModelIntegrityError
        Missing file, no known hash, hash mismatch, or not a model bundle.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelIntegrityError(f"model file not found: {path}")
    if expected_sha256 is None:
        sidecar = path.with_name(path.name + ".sha256")
        if not sidecar.is_file():
            raise ModelIntegrityError(
                f"no sha256 for {path}: expected {sidecar.name} beside it (written at training)"
            )
        expected_sha256 = sidecar.read_text().split()[0]
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ModelIntegrityError(
            f"model file {path} was modified or corrupted: sha256 {actual[:12]}... "
            f"does not match the recorded {expected_sha256[:12]}...; refusing to load it",
            path=str(path),
        )
    try:
        bundle = joblib.load(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise ModelIntegrityError(f"model file {path} cannot be read: {exc}") from None
    if not isinstance(bundle, ModelBundle) or bundle.format != BUNDLE_FORMAT:
        raise ModelIntegrityError(f"{path} is not a tradebot model bundle (format {BUNDLE_FORMAT})")
    return bundle
