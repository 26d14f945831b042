"""Registry, promotion, loading, live predictions, monitoring and the ML page (real PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.audit.models import AuditEvent, DecisionLog
from apps.ml import services
from apps.ml.domain.errors import MlError, ModelIntegrityError, TrainingDataError
from apps.ml.models import CalibrationLevel, ModelStatus, ModelVersion, Prediction
from tests.conftest import otp_login
from tests.ml.conftest import SMALL, write_csv

pytestmark = pytest.mark.django_db
NOW = datetime(2025, 9, 1, tzinfo=UTC)


class _Worse:
    """A deliberately worse model: the good one's probabilities pushed toward 0.5."""

    def __init__(self, model):
        self.model = model

    def predict_proba(self, x):
        p = 0.5 * self.model.predict_proba(x)[:, 1] + 0.25
        return np.column_stack([1 - p, p])


def _register_worse(active_mv, small_csv):
    from apps.ml.domain.model import ModelBundle

    good = services.model_load(model_version=active_mv)
    bundle = ModelBundle(_Worse(good.model), good.uncalibrated, good.feature_names, good.config)
    result = type("R", (), {})()
    result.bundle, result.config, result.folds = bundle, SMALL, []
    result.train_start, result.train_end = active_mv.train_start, active_mv.train_end
    result.heldout_start, result.heldout_end = active_mv.heldout_start, active_mv.heldout_end
    result.drift_reference = active_mv.drift_reference
    return services.model_register(
        result=result,
        metrics={"ece": 0.2, "log_loss": 1.0},
        instrument="BTC-USDT",
        data_path=small_csv,
        actor="test",
        now=NOW + timedelta(seconds=1),
    )


def test_train_when_data_good_then_candidate_registered_with_file_and_metrics(
    models_dir, small_csv
):
    mv = services.model_train(data_path=small_csv, config=SMALL, actor="test", now=NOW)
    assert mv.status == ModelStatus.CANDIDATE
    for key in ("log_loss", "brier", "ece", "ece_bins", "auc", "backtest_pnl"):
        assert mv.metrics[key] is not None
    assert mv.file_sha256
    assert (models_dir / f"{mv.version}.joblib").is_file()
    assert mv.feature_names
    assert mv.data_sha256
    assert mv.train_end < mv.heldout_start
    assert AuditEvent.objects.filter(action="ml.model_registered", target=mv.version).exists()


def test_promote_when_candidate_worse_then_refused_and_active_unchanged(active, small_csv):
    worse = _register_worse(active, small_csv)
    with pytest.raises(MlError, match="does not beat the active model"):
        services.model_promote(version=worse.version, actor="test")
    active.refresh_from_db()
    assert active.status == ModelStatus.ACTIVE
    assert AuditEvent.objects.filter(action="ml.promotion_refused", target=worse.version).exists()
    # a manual override needs a reason and is audited
    with pytest.raises(MlError, match="needs --reason"):
        services.model_promote(version=worse.version, actor="test", force=True)
    services.model_promote(version=worse.version, actor="user:ops", force=True, reason="drill")
    assert ModelVersion.objects.get(pk=active.pk).status == ModelStatus.RETIRED
    assert AuditEvent.objects.filter(action="ml.promote_override", actor="user:ops").exists()


def test_promote_when_file_tampered_or_version_unknown_then_refused(active, small_csv):
    worse = _register_worse(active, small_csv)
    path = worse.file_path
    with open(path, "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(ModelIntegrityError, match="modified or corrupted"):
        services.model_promote(version=worse.version, actor="test", force=True, reason="x")
    with pytest.raises(services.ModelNotFoundError, match="unknown model version"):
        services.model_promote(version="nope", actor="test")
    assert services.model_active_get().pk == active.pk


def test_train_when_bad_input_then_clear_error_and_active_unchanged(active, ml_bars, tmp_path):
    short = write_csv(tmp_path / "BTC-USDT_1m_short.csv", ml_bars[:2000])
    with pytest.raises(TrainingDataError, match="too little data"):
        services.model_train(data_path=short, config=SMALL, actor="test")
    gappy = write_csv(tmp_path / "BTC-USDT_1m_gap.csv", ml_bars[:20000] + ml_bars[20005:45000])
    with pytest.raises(TrainingDataError, match="missing bars"):
        services.model_train(data_path=gappy, config=SMALL, actor="test")
    with pytest.raises(TrainingDataError, match="not found"):
        services.model_train(data_path=tmp_path / "none.csv", config=SMALL, actor="test")
    assert services.model_active_get().pk == active.pk
    assert ModelVersion.objects.count() == 1


def test_live_strategy_when_bars_arrive_then_predictions_logged_and_decision_links_them(
    active, ml_bars
):
    # Arrange: the live engine path with the ML strategy on the active model
    from apps.marketdata.services import instrument_get_or_create
    from apps.strategies.domain.base import SignalAction
    from apps.trading.services.accounts import account_get_or_create
    from apps.trading.services.decisions import decision_make

    instrument_get_or_create(symbol="BTC-USDT")
    account = account_get_or_create(name="ml-test")
    strategy = services.ml_strategy_live(threshold=0.2)
    # Act
    signal = None
    for bar in ml_bars[-3000:]:
        s = strategy.on_bar(bar)
        if s.action is SignalAction.ENTER_LONG:
            signal = s
            break
    assert signal is not None
    outcome = decision_make(
        account=account,
        signal=signal,
        strategy="ml",
        strategy_params=strategy.params,
        stake=Decimal(100),
        reference_price=signal.price,
        reference_ts=signal.ts,
    )
    # Assert
    assert Prediction.objects.filter(model_version=active).count() > 0
    decision = DecisionLog.objects.get(pk=outcome.decision.pk)
    assert decision.model_version == active.version
    prediction = Prediction.objects.get(pk=decision.prediction_id)
    assert prediction.bar_ts == signal.ts
    assert prediction.model_version_id == active.pk


def _fake_predictions(mv, n, p_fn, y_fn, features=None):
    ts0 = datetime(2025, 8, 1, tzinfo=UTC)
    feats = features if features is not None else np.zeros((n, len(mv.feature_names)))
    Prediction.objects.bulk_create(
        Prediction(
            model_version=mv,
            instrument="BTC-USDT",
            bar_ts=ts0 + timedelta(minutes=i),
            horizon=30,
            probability=p_fn(i),
            features=[float(v) for v in feats[i]],
            features_hash="x",
            outcome=bool(y_fn(i)),
            resolved_at=NOW,
        )
        for i in range(n)
    )


def test_monitor_when_ece_critical_then_alert_and_ml_strategy_to_observation(active, ml_bars):
    # Arrange: predictions of 0.9 that come true 10% of the time; features from real bars
    from apps.ml.domain.features import BarArrays, feature_matrix

    x = feature_matrix(BarArrays.from_bars(ml_bars[-1000:]))[-500:]
    _fake_predictions(active, 500, lambda i: 0.9, lambda i: i % 10 == 0, features=x)
    # Act
    snap = services.calibration_monitor(now=NOW)
    # Assert
    assert snap.level == CalibrationLevel.CRITICAL
    assert snap.ece == pytest.approx(0.8)
    assert services.ml_control_get().observation
    assert services.ml_strategy_live().observation
    assert AuditEvent.objects.filter(action="ml.observation_on").exists()
    assert snap.psi_max is not None


def test_monitor_when_feature_shifted_then_flagged_drifted(active, ml_bars):
    from apps.ml.domain.features import FEATURE_NAMES, BarArrays, feature_matrix

    x = feature_matrix(BarArrays.from_bars(ml_bars[-1000:]))[-500:].copy()
    i = FEATURE_NAMES.index("dist_sma_60")
    x[:, i] += 5 * np.std(x[:, i])
    _fake_predictions(active, 500, lambda k: 0.1, lambda k: k % 10 == 0, features=x)
    snap = services.calibration_monitor(now=NOW)
    assert snap.level == CalibrationLevel.OK
    assert "dist_sma_60" in snap.drifted
    assert snap.psi["ret_1"] < 0.25


def test_ml_page_when_verified_staff_then_reliability_diagram_renders(
    active, client, staff_user, django_user_model
):
    _fake_predictions(active, 300, lambda i: (i % 10) / 10 + 0.05, lambda i: i % 3 == 0)
    services.calibration_monitor(now=NOW)
    from django.urls import reverse

    url = reverse("ml:page")
    assert client.get(url).status_code == 302  # anonymous -> login
    client.force_login(staff_user)
    assert client.get(url).status_code == 302  # password only -> second factor first
    plain = django_user_model.objects.create_user(username="u", password="pw-for-tests-only")
    otp_login(client, plain)
    assert client.get(url).status_code == 403  # verified but not staff
    otp_login(client, staff_user)
    html = client.get(url).content.decode()
    assert 'id="ml-reliability"' in html
    assert "uPlot" in html
    assert active.version in html
    assert html.count("<tr><td>0.") >= 10  # one row per reliability bin


def test_commands_when_used_then_one_line_errors_and_listing(active, capsys):
    call_command("model_list")
    assert active.version in capsys.readouterr().out
    with pytest.raises(CommandError, match="unknown model version 'nope'"):
        call_command("model_promote", "nope")
    with pytest.raises(CommandError, match="data file not found"):
        call_command("train", "--data", "/nonexistent.csv", "--no-progress")


def test_metrics_when_scraped_then_ml_series_present(active):
    from prometheus_client import generate_latest

    _fake_predictions(active, 300, lambda i: 0.1, lambda i: i % 10 == 0)
    services.calibration_monitor(now=NOW)
    text = generate_latest().decode()
    assert f'ml_calibration_ece{{model_version="{active.version}"}}' in text
    assert "ml_predictions_total" in text
    assert "ml_feature_psi_max" in text


def test_retrain_command_and_task_when_data_given_then_candidate_trained_with_active_settings(
    active, small_csv, capsys
):
    from apps.ml.models import ModelVersion
    from apps.ml.tasks import retrain

    before = ModelVersion.objects.count()

    call_command("retrain", "--data", str(small_csv), "--no-progress")
    out = capsys.readouterr().out
    version = retrain.apply(kwargs={"data_path": str(small_csv)}).get()

    assert ModelVersion.objects.count() == before + 2
    newest = ModelVersion.objects.get(version=version)
    assert newest.params["n_folds"] == SMALL.n_folds  # the active model's settings
    assert ModelVersion.objects.filter(status="active").count() == 1  # promoted only if better
    assert out.strip()
