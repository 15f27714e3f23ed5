"""The per-socket token bucket, on a hand-driven clock."""

from roomserver.ratelimit import TokenBucket


def test_burst_then_sustained_rate():
    bucket = TokenBucket(rate=10, burst=5)
    assert all(bucket.allow(0.0) for _ in range(5))
    assert not bucket.allow(0.0)
    assert bucket.allow(0.1)  # one token back after 1/rate seconds
    assert not bucket.allow(0.1)


def test_a_pause_forgives_a_burst():
    bucket = TokenBucket(rate=10, burst=10, patience=5)
    for _ in range(20):
        bucket.allow(0.0)
    assert not bucket.abusive(0.0)
    assert bucket.allow(1.0)  # refilled
    assert not bucket.abusive(6.0)


def test_staying_over_the_rate_becomes_abusive():
    bucket = TokenBucket(rate=10, burst=10, patience=5)
    t = 0.0
    while t < 6.0:
        for _ in range(3):  # 30 messages a second against a rate of 10
            bucket.allow(t)
        t += 0.1
    assert bucket.abusive(t)
