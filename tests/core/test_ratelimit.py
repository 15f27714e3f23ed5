"""The per-socket token bucket, on a hand-driven clock."""

from roomserver.core.ratelimit import TokenBucket


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



def _spend(bucket: TokenBucket, times: list[float]) -> int:
    """Messages let through when the caller spends ``take_all`` credit itself, as the relay does."""
    sent, credit = 0, 0
    for t in times:
        if credit == 0:
            credit = bucket.take_all(t)
            if credit == 0:
                continue
        credit -= 1
        sent += 1
    return sent


def test_take_all_spends_the_same_budget_as_allow():
    times = [i / 200 for i in range(600)]  # 200 messages a second for 3 s
    one = TokenBucket(rate=10, burst=5)
    allowed = sum(one.allow(t) for t in times)
    taken = _spend(TokenBucket(rate=10, burst=5), times)
    assert 34 <= allowed <= 35  # the burst plus 3 s at the rate
    assert abs(taken - allowed) <= 1


def test_take_all_refuses_an_empty_bucket_and_a_flood_turns_abusive():
    bucket = TokenBucket(rate=10, burst=4, patience=5)
    assert sum(bucket.take_all(0.0) for _ in range(4)) == 4
    assert bucket.take_all(0.0) == 0
    assert not bucket.abusive(0.0)
    _spend(bucket, [i / 100 for i in range(600)])  # 100 a second against a rate of 10, for 6 s
    assert bucket.abusive(6.0)
    assert sum(bucket.take_all(30.0) for _ in range(5)) == 4  # a long pause refills the burst and forgives
    assert not bucket.abusive(30.0)


def test_credit_held_over_a_quiet_spell_does_not_double_the_burst():
    """The documented burst (200) holds for a socket that got credit, went quiet, then floods."""
    bucket = TokenBucket(rate=50, burst=200)
    # One message (the socket now holds unspent credit), 6 s of quiet, then a flood in one instant.
    sent = _spend(bucket, [0.0] + [6.0] * 1000)
    assert sent <= 201


def test_a_sender_at_the_rate_is_never_refused():
    bucket = TokenBucket(rate=50, burst=200)
    times = [i / 50 for i in range(1000)]  # exactly the sustained rate, for 20 s
    assert _spend(bucket, times) == len(times)
