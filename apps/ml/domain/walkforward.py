"""Walk-forward splits with an embargo between train and test.

Rows are in time order. Each fold tests on ``test_size`` consecutive rows; its training
rows end ``embargo`` rows before the test starts (so no training label, which looks
``horizon`` bars ahead, overlaps the test window: use embargo >= horizon). Expanding
windows train from row 0; rolling windows keep the last ``train_size`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Fold:
    train_start: int
    train_end: int  # exclusive
    test_start: int
    test_end: int  # exclusive

    @property
    def train(self) -> range:
        return range(self.train_start, self.train_end)

    @property
    def test(self) -> range:
        return range(self.test_start, self.test_end)


def walk_forward_splits(
    n: int,
    *,
    n_folds: int,
    test_size: int,
    embargo: int,
    min_train: int,
    mode: str = "expanding",
    train_size: int | None = None,
) -> list[Fold]:
    """The folds, oldest first; the last fold's test window ends at row ``n``.

    Raises
    ------
    ValueError
        On bad sizes, or when the data is too short for ``n_folds`` folds with
        ``min_train`` training rows before the first test window.
    """
    if n_folds < 1 or test_size < 1 or embargo < 0 or min_train < 1:
        raise ValueError("n_folds, test_size and min_train must be >= 1 and embargo >= 0")
    if mode not in ("expanding", "rolling"):
        raise ValueError(f"mode must be 'expanding' or 'rolling', got {mode!r}")
    if mode == "rolling" and (train_size is None or train_size < min_train):
        raise ValueError("rolling mode needs train_size >= min_train")
    first_test = n - n_folds * test_size
    if first_test - embargo < min_train:
        need = min_train + embargo + n_folds * test_size
        raise ValueError(
            f"too little data: {n} rows, need at least {need} "
            f"({min_train} to train + {embargo} embargo + {n_folds} x {test_size} to test)"
        )
    folds = []
    for k in range(n_folds):
        test_start = first_test + k * test_size
        train_end = test_start - embargo
        train_start = 0 if mode == "expanding" else max(0, train_end - (train_size or 0))
        folds.append(Fold(train_start, train_end, test_start, test_start + test_size))
    return folds
