"""Train a calibrated model with walk-forward splits and register it as a candidate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.ml.domain.errors import MlError
from apps.ml.domain.model import ALGORITHMS, CALIBRATIONS, TrainConfig
from apps.ml.management.commands._common import StageBar, cli_actor, one_line


def add_train_arguments(parser: CommandParser) -> None:
    d = TrainConfig()
    parser.add_argument(
        "--data", required=True, metavar="CSV", help="gap-free OHLCV file (.csv/.csv.gz)"
    )
    parser.add_argument(
        "--algorithm",
        choices=ALGORITHMS,
        default=d.algorithm,
        help="base model (default %(default)s)",
    )
    parser.add_argument(
        "--calibration", choices=CALIBRATIONS, default=d.calibration, help="default %(default)s"
    )
    parser.add_argument(
        "--horizon", type=int, default=d.horizon, help="label horizon in bars (default %(default)s)"
    )
    parser.add_argument(
        "--fee",
        type=float,
        default=d.fee_rate,
        help="fee rate per fill; label cost = 2 x fee (default %(default)s)",
    )
    parser.add_argument(
        "--folds", type=int, default=d.n_folds, help="walk-forward folds (default %(default)s)"
    )
    parser.add_argument(
        "--test-size",
        type=int,
        default=d.test_size,
        help="bars per test window (default %(default)s)",
    )
    parser.add_argument(
        "--stride",
        type=int,
        default=d.stride,
        help="fit on every Nth training row (default %(default)s)",
    )
    parser.add_argument(
        "--rolling",
        type=int,
        default=None,
        metavar="BARS",
        help="rolling training window of BARS (default: expanding)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from(options: dict[str, Any]) -> TrainConfig:
    return TrainConfig(
        algorithm=options["algorithm"],
        calibration=options["calibration"],
        horizon=options["horizon"],
        fee_rate=options["fee"],
        n_folds=options["folds"],
        test_size=options["test_size"],
        stride=options["stride"],
        mode="rolling" if options["rolling"] else "expanding",
        train_size=options["rolling"],
    )


class Command(BaseCommand):
    help = (
        "Train a model predicting P(forward return over --horizon bars > 2 x --fee) with "
        "calibrated probabilities, walk-forward splits (embargo = horizon) and held-out "
        "metrics (log loss, Brier, ECE, AUC, backtest P&L); save it under models/ with its "
        "sha256 and register it as a CANDIDATE (promote with model_promote). "
        "Bad input is a one-line error; the active model is never changed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_train_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        from apps.ml.services import model_train

        config = config_from(options)
        bar = StageBar(config.n_folds + 1, options["no_progress"])
        try:
            mv = model_train(
                data_path=Path(options["data"]), config=config, actor=cli_actor(), progress=bar
            )
        except (MlError, ValueError) as exc:
            raise one_line(exc) from None
        finally:
            bar.close()
        m = mv.metrics
        self.stdout.write(
            f"registered {mv.version} (candidate) {mv.algorithm}+{config.calibration} on "
            f"{mv.instrument}: held-out {mv.heldout_start:%Y-%m-%d %H:%M} .. {mv.heldout_end:%Y-%m-%d %H:%M}\n"
            f"  log loss {m['log_loss']:.5f}  Brier {m['brier']:.5f}  "
            f"ECE({int(m['ece_bins'])} bins) {m['ece']:.4f} (uncalibrated {m['ece_uncalibrated']:.4f})  "
            f"AUC {m['auc']:.4f}\n"
            f"  backtest on held-out: P&L {m['backtest_pnl']:.2f} over {int(m['backtest_trades'])} trades "
            f"(stake {m['backtest_stake']:.0f}, threshold {m['backtest_threshold']})\n"
            f"  file {mv.file_path} sha256 {mv.file_sha256}"
        )
