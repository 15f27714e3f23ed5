"""The outbox on both engines: lanes in order, leases, lost claims, no double claim under racing threads."""

from __future__ import annotations

import threading
from collections import Counter

from pathlib import Path
from typing import Iterator

import pytest

from roomserver.store import Store, open_store
from tests import pg

NOW = 1_800_000_000_000
LEASE = 60_000


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store on each engine."""
    if request.param == "postgresql":
        if pg.unavailable():
            pytest.skip(pg.unavailable())
        url = pg.new_database()
        s = open_store(url, tmp_path / "unused")
        yield s
        s.close()
        pg.drop_database(url)
    else:
        s = Store.open_sqlite(tmp_path / "store.sqlite3")
        yield s
        s.close()


def add(store: Store, lane: str, n: int, *, due: int | None = None, kind: str = "webhook") -> list[int]:
    return [store.blocking.outbox.add(kind=kind, lane=lane, payload=f'{{"n":{i}}}', now=NOW, due=due)
            for i in range(n)]


def test_a_lane_goes_out_in_order_one_at_a_time(store: Store) -> None:
    a = add(store, "webhook:a", 3)
    b = add(store, "webhook:b", 2)
    out = store.blocking.outbox
    first = out.claim("n1", now=NOW, lease_ms=LEASE)
    assert [r.id for r in first] == [a[0], b[0]]  # the head of each lane only
    assert out.claim("n1", now=NOW, lease_ms=LEASE) == []  # heads are claimed: the lanes wait
    assert out.sent(a[0], "n1", NOW)
    assert [r.id for r in out.claim("n1", now=NOW, lease_ms=LEASE)] == [a[1]]
    # A retry later keeps the lane waiting behind its head until it is due.
    assert out.retry_later(a[1], "n1", NOW + 5000, "503")
    assert out.claim("n1", now=NOW + 4000, lease_ms=LEASE) == []
    again = out.claim("n1", now=NOW + 5000, lease_ms=LEASE)
    assert [(r.id, r.attempts) for r in again] == [(a[1], 2)]
    assert out.failed(a[1], "n1", NOW, "gave up")  # a failed head frees the lane for the next
    assert [r.id for r in out.claim("n1", now=NOW + 5000, lease_ms=LEASE)] == [a[2]]
    assert out.counts()[("webhook", "failed")] == 1


def test_a_message_due_later_waits_and_only_the_claiming_node_may_finish_it(store: Store) -> None:
    [row] = add(store, "invite:j1", 1, due=NOW + 3_600_000, kind="email")
    out = store.blocking.outbox
    assert out.claim("n1", now=NOW, lease_ms=LEASE) == []
    [claimed] = out.claim("n1", now=NOW + 3_600_000, lease_ms=LEASE)
    assert claimed.id == row and claimed.claimed_by == "n1"
    assert not out.sent(row, "n2", NOW)  # not n2's
    assert out.get(row).state == "pending"


def test_a_lost_claim_is_taken_over_when_its_lease_runs_out_or_is_released(store: Store) -> None:
    [row] = add(store, "webhook:a", 1)
    out = store.blocking.outbox
    assert len(out.claim("dead", now=NOW, lease_ms=LEASE)) == 1
    assert out.claim("n2", now=NOW + LEASE - 1, lease_ms=LEASE) == []
    [again] = out.claim("n2", now=NOW + LEASE + 1, lease_ms=LEASE)
    assert again.claimed_by == "n2" and again.attempts == 2
    assert out.claimers() == ["n2"]
    assert out.release(nodes=["n2"]) == 1
    assert [r.id for r in out.claim("n3", now=NOW, lease_ms=LEASE)] == [row]
    assert out.release(except_node="n3") == 0 and out.release(except_node="n4") == 1


def test_racing_claims_never_hand_a_message_to_two_nodes(store: Store) -> None:
    for lane in range(40):
        add(store, f"webhook:{lane}", 3)
    got: Counter[int] = Counter()
    lock = threading.Lock()

    def node(name: str) -> None:
        out = store.blocking.outbox
        for _ in range(30):
            rows = out.claim(name, now=NOW, lease_ms=LEASE, limit=7)
            with lock:
                got.update(r.id for r in rows)
            for r in rows:
                assert out.sent(r.id, name, NOW)

    threads = [threading.Thread(target=node, args=(f"n{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 120 and set(got.values()) == {1}
    assert store.blocking.outbox.counts() == {("webhook", "sent"): 120}


def test_retry_trim_cancel_and_purge(store: Store) -> None:
    rows = add(store, "webhook:a", 5)
    out = store.blocking.outbox
    assert out.trim("webhook:a", 3, NOW) == 2
    assert [r.state for r in out.lane("webhook:a")] == ["cancelled", "cancelled", "pending", "pending", "pending"]
    [head] = out.claim("n1", now=NOW, lease_ms=LEASE)
    assert out.failed(head.id, "n1", NOW, "500")
    assert out.retry(head.id, NOW + 10) and not out.retry(head.id, NOW + 10)  # only a failed one
    assert out.get(head.id).state == "pending" and out.get(head.id).attempts == 0
    assert out.cancel_lane("webhook:a", NOW, "gone") == 3
    assert out.purge(NOW + 1) == 5 and out.lane("webhook:a") == []
    assert rows
