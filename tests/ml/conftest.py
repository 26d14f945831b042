"""ML fixtures: the real BTC-USDT 1m data set from ../shared/data/ml (never copied into the repo)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from apps.ml.domain.model import TrainConfig

REPO = Path(__file__).resolve().parents[2]
SMALL = TrainConfig(n_folds=2, test_size=5000, stride=4)  # a quick training for tests
ML_DATA = REPO.parent / "shared" / "data" / "ml" / "BTC-USDT_1m_binance.csv.gz"


@pytest.fixture(scope="session")
def ml_data_path() -> Path:
    if not ML_DATA.is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"ML data set missing in CI: {ML_DATA} (CI clones shared/ beside the repo)")
        pytest.skip(f"ML data set not found at {ML_DATA} (shared/ is not beside the repo)")
    return ML_DATA


@pytest.fixture(scope="session")
def ml_bars(ml_data_path):
    from apps.marketdata.domain.csvfile import read_bars

    return list(read_bars(ml_data_path))


@pytest.fixture(scope="session")
def trained(ml_bars):
    """One full walk-forward training on the 130k bars (about 5 s on 2 cores)."""
    from apps.ml.domain.features import BarArrays
    from apps.ml.domain.model import TrainConfig, train_model

    return train_model(BarArrays.from_bars(ml_bars), [b.ts for b in ml_bars], TrainConfig())


def write_csv(path: Path, bars) -> Path:
    """Bars to a CSV in a temp dir (tests only; the data set stays outside the repo)."""
    with open(path, "w") as f:
        f.write("timestamp,open,high,low,close,volume\n")
        for b in bars:
            f.write(f"{b.ts:%Y-%m-%dT%H:%M:%SZ},{b.open},{b.high},{b.low},{b.close},{b.volume}\n")
    return path


@pytest.fixture
def models_dir(settings, tmp_path):
    settings.ML_MODELS_DIR = tmp_path / "models"
    return settings.ML_MODELS_DIR


@pytest.fixture(scope="module")
def small_csv(ml_bars, tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("ml") / "BTC-USDT_1m_test.csv", ml_bars[-40000:])


@pytest.fixture
def active(models_dir, small_csv):
    from apps.ml import services

    now = datetime(2025, 9, 1, tzinfo=UTC)
    mv = services.model_train(data_path=small_csv, config=SMALL, actor="test", now=now)
    return services.model_promote(version=mv.version, actor="test", now=now)
