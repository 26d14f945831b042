import random

import pytest

from apps.brokers.domain.backoff import backoff_delay


def test_backoff_when_attempts_grow_then_ceiling_doubles_up_to_the_cap() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(0, 1), (1, 2), (2, 4), (5, 32), (6, 60), (40, 60)]:
        samples = [backoff_delay(attempt, base=1, cap=60, rng=rng) for _ in range(300)]
        assert min(samples) >= 0
        assert max(samples) <= ceiling
        assert max(samples) > ceiling * 0.8  # full jitter reaches the top of the range


def test_backoff_when_jittered_then_clients_do_not_retry_in_step() -> None:
    delays = {round(backoff_delay(4, base=1, cap=60), 3) for _ in range(50)}
    assert len(delays) > 40


def test_backoff_when_attempt_negative_then_error_names_it() -> None:
    with pytest.raises(ValueError, match="attempt must be >= 0"):
        backoff_delay(-1, base=1, cap=60)
