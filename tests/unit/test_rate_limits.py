"""The gateway's GCRA rate limits, on a clock the tests move by hand."""

import pytest

from gateway.infrastructure.limits import Rate, RateLimits, Throttled
from shared.settings import Settings


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("notation", "interval"), [("5/minute", 12.0), ("50/second", 0.02), ("3/second", 1 / 3)])
def test_a_full_burst_passes_then_one_per_emission_interval(notation: str, interval: float) -> None:
    clock = Clock()
    rate = Rate(notation, clock)
    assert rate.interval == pytest.approx(interval)
    assert [rate.hit("caller") for _ in range(rate.amount)] == [0.0] * rate.amount
    assert rate.hit("caller") == pytest.approx(interval)  # refused: the next one is one interval away
    clock.now += interval / 2
    assert rate.hit("caller") == pytest.approx(interval / 2)  # refusals are not counted
    clock.now += interval / 2
    assert rate.hit("caller") == 0.0
    assert rate.hit("caller") == pytest.approx(interval)


def test_an_idle_key_gets_its_whole_burst_back_and_no_more() -> None:
    clock = Clock()
    rate = Rate("5/minute", clock)
    for _ in range(5):
        rate.hit("caller")
    clock.now += 3600
    assert [rate.hit("caller") for _ in range(6)] == [0.0] * 5 + [pytest.approx(12.0)]


def test_keys_are_independent() -> None:
    rate = Rate("2/minute", Clock())
    assert [rate.hit("login", "203.0.113.1") for _ in range(3)] == [0.0, 0.0, pytest.approx(30.0)]
    assert rate.hit("login", "203.0.113.2") == 0.0
    assert rate.hit("login", "203.0.113.1", "victim@example.com") == 0.0


def test_the_key_table_stays_bounded() -> None:
    clock = Clock()
    rate = Rate("10/second", clock)
    for i in range(100_000):  # each key is idle again 0.1 s later: 100 live keys at a time
        clock.now += 0.001
        assert rate.hit(f"client {i}") == 0.0
        assert len(rate._tats) <= Rate.MIN_SWEEP + 1
    clock.now += 1
    for i in range(Rate.MIN_SWEEP + 1):  # live keys are never dropped, so never reset
        assert rate.hit(f"busy {i}") == 0.0
    assert len(rate._tats) == Rate.MIN_SWEEP + 1  # the sweep dropped only the idle ones
    assert [rate.hit("busy 0") for _ in range(10)][-1] == pytest.approx(0.1)  # its 1 hit was kept


def test_rate_limits_raise_throttled_with_retry_after() -> None:
    clock = Clock()
    settings = Settings(
        secret_key="x" * 40,
        environment="test",
        login_rate_per_account="2/hour",
        write_rate_per_caller="500/second",
    )
    rate_limits = RateLimits(settings, clock)
    rate_limits.login_account("192.0.2.1", "a@example.com")
    rate_limits.login_account("192.0.2.1", "a@example.com")
    with pytest.raises(Throttled) as refused:
        rate_limits.login_account("192.0.2.1", "a@example.com")
    assert refused.value.status_code == 429
    assert refused.value.headers == {"Retry-After": "1800"}
    rate_limits.login_account("192.0.2.2", "a@example.com")  # another client: its own bucket
    for _ in range(500):
        rate_limits.hit(rate_limits.write_per_caller, "writes", "write", "user:1")
    with pytest.raises(Throttled) as refused:
        rate_limits.hit(rate_limits.write_per_caller, "writes", "write", "user:1")
    assert refused.value.headers == {"Retry-After": "1"}  # 2 ms away, at least 1 s
