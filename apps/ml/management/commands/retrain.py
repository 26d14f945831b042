"""Retrain on fresh data with the active model's settings and promote if it is better."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.ml.domain.errors import MlError
from apps.ml.management.commands._common import StageBar, cli_actor, one_line


class Command(BaseCommand):
    help = (
        "Walk-forward retraining (what the quarterly Celery task ml.retrain runs): train a "
        "candidate on --data with the active model's settings, then promote it only if it "
        "beats the active model on held-out data; otherwise it stays a candidate and the "
        "active model is unchanged."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--data", required=True, metavar="CSV", help="gap-free OHLCV file")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        from apps.ml.models import ModelStatus
        from apps.ml.services import model_active_get, model_retrain

        active = model_active_get()
        folds = int(active.params.get("n_folds", 3)) if active else 3
        bar = StageBar(folds + 1, options["no_progress"])
        try:
            mv = model_retrain(data_path=Path(options["data"]), actor=cli_actor(), progress=bar)
        except (MlError, ValueError) as exc:
            raise one_line(exc) from None
        finally:
            bar.close()
        if mv.status == ModelStatus.ACTIVE:
            self.stdout.write(f"{mv.version} trained and promoted (active)")
        else:
            current = model_active_get()
            self.stdout.write(
                f"{mv.version} trained but not promoted (candidate); active model unchanged: "
                f"{current.version if current else 'none'}"
            )
