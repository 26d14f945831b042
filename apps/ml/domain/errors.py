"""ML errors: each one says what is wrong and what to do; the active model is never touched."""

from __future__ import annotations

from apps.model.errors import DomainError


class MlError(DomainError):
    code = "ml_error"


class TrainingDataError(MlError):
    """Too little data, missing bars, a constant feature, one class only."""

    code = "ml_training_data"


class ModelIntegrityError(MlError):
    """A model file whose sha256 does not match its record, or that cannot be read."""

    code = "ml_model_integrity"
