"""Budget leases: replicas spend blocks of shared budget drawn from Redis in memory, and a
hard limit still holds across all of them (llmrouter/budgets/leases.py)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from services import fresh_redis

from llmrouter import BudgetExceeded
from llmrouter.budgets import Budgets, Hold, RedisCounters
from llmrouter.budgets.counters import NANOS
from llmrouter.budgets.leases import lease_key
from llmrouter.policy.schema import BudgetConfig


@pytest.fixture
def shared() -> Iterator[tuple[str, str]]:
    with fresh_redis() as pair:
        yield pair


def leased(
    url: str,
    prefix: str,
    configs: list[BudgetConfig],
    replica: str,
    ttl_s: float = 10.0,
    settle_s: float = 0.01,
) -> Budgets:
    counters = RedisCounters(
        redis.Redis.from_url(url), url, settle_s=settle_s, leases=True, replica=replica
    )
    assert counters.pools is not None
    counters.pools.ttl_s = ttl_s
    return Budgets(configs, counters, prefix)


def wait_for_pools(budgets: Budgets, amount: float, **caller: str) -> None:
    """Reserve (and settle at no cost) until calls are taken from the pools, not Redis."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        hold = budgets.reserve(amount, **caller)  # type: ignore[arg-type]
        assert hold is not None
        budgets.settle(hold, 0.0)
        if hold.cells is not None:
            return
        time.sleep(0.02)
    raise AssertionError("the pools were never filled")


def test_replicas_never_overspend_a_hard_budget_under_concurrency(
    shared: tuple[str, str],
) -> None:
    """Four replicas, three threads each, reserving (and never settling) until refused:
    together they hold at most the limit, most of it granted from pools in memory."""
    url, prefix = shared
    limit = 2.0
    config = BudgetConfig(name="g", limit_usd=limit, period="total")
    replicas = [leased(url, prefix, [config], f"r{i}") for i in range(4)]
    granted = [0] * 4
    from_pools = [0] * 4

    def worker(index: int) -> None:
        budgets = replicas[index]
        refusals = 0
        while refusals < 50:  # keep asking while pools drain and leases shrink
            try:
                hold = budgets.reserve(0.001)
            except BudgetExceeded:
                refusals += 1
                time.sleep(0.002)
                continue
            assert hold is not None
            granted[index] += 1
            from_pools[index] += hold.cells is not None

    threads = [threading.Thread(target=worker, args=(i % 4,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client = redis.Redis.from_url(url)
    key = f"{prefix}:budget:g:*:all"
    for budgets in replicas:
        budgets.close()  # gives the unspent pools back
    counter = int(client.get(key) or 0)
    client.close()
    assert sum(granted) * 1_000_000 <= limit * NANOS  # never more than the limit
    assert counter == sum(granted) * 1_000_000  # what is left counted: the reservations
    # leases did much of the work (about half under CPU contention: 3 copies on 2 cores)
    assert sum(from_pools) > sum(granted) // 3
    assert sum(granted) >= 1500  # and left little of the budget unused


def test_async_callers_of_two_replicas_stay_within_a_hard_budget(
    shared: tuple[str, str],
) -> None:
    url, prefix = shared
    config = BudgetConfig(name="g", limit_usd=1.0, period="day")
    replicas = [leased(url, prefix, [config], f"r{i}") for i in range(2)]

    async def one(budgets: Budgets) -> float:
        try:
            hold = await budgets.areserve(0.002)
        except BudgetExceeded:
            return 0.0
        await asyncio.sleep(0.001)
        assert hold is not None
        budgets.settle(hold, 0.0015)  # each call costs less than its worst case
        return 0.0015

    async def many() -> float:
        total = 0.0
        for _ in range(40):  # waves: the pools refill between them
            spent = await asyncio.gather(*(one(replicas[i % 2]) for i in range(40)))
            total += sum(spent)
            await asyncio.sleep(0.005)
        return total

    spent = asyncio.run(many())
    for budgets in replicas:
        budgets.close()
    reader = leased(url, prefix, [config], "reader")
    counted = reader.spent(config)
    reader.close()
    assert spent <= 1.0 + 1e-9
    assert counted == pytest.approx(spent, abs=1e-9)  # after close: exactly the spend
    assert spent >= 0.9  # the budget was nearly used up


def test_a_crashed_replicas_lease_is_reclaimed(shared: tuple[str, str]) -> None:
    """A replica dies holding a lease while another keeps renewing its own in the same hash
    (so the hash itself never expires): the dead replica's field is deleted once its expiry
    passes, and the room it held is usable again."""
    url, prefix = shared
    config = BudgetConfig(name="g", limit_usd=1.0, period="total")
    crashed = leased(url, prefix, [config], "crashed", ttl_s=0.5)
    wait_for_pools(crashed, 0.001)
    # Renews every ~0.17 s; settling every 50 ms, its idle pool is kept for seconds.
    live = leased(url, prefix, [config], "live", ttl_s=0.5, settle_s=0.05)
    wait_for_pools(live, 0.001)
    client = redis.Redis.from_url(url)
    key = f"{prefix}:budget:g:*:all"
    assert client.hget(lease_key(key), "crashed") is not None  # a lease held in reserve
    # The replica dies: its settling thread stops without giving anything back.
    counters = crashed.counters
    assert isinstance(counters, RedisCounters)
    counters._settlements.stop().done.wait(5)
    crashed_at = time.monotonic()
    assert client.hget(lease_key(key), "crashed") is not None
    deadline = crashed_at + 2
    while client.hget(lease_key(key), "crashed") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.hget(lease_key(key), "crashed") is None  # reclaimed by live's renewals
    assert client.hget(lease_key(key), "live") is not None  # while the hash lives on
    live.close()  # gives its pool and lease back
    pool_in_counter = int(client.get(key) or 0)  # the dead replica's pool stays counted
    assert pool_in_counter > 0
    survivor = leased(url, prefix, [config], "survivor")
    room = NANOS - pool_in_counter  # everything but the dead replica's pool
    hold = survivor.reserve(room / NANOS)  # refused if the dead lease still counted
    assert hold is not None
    with pytest.raises(BudgetExceeded):
        survivor.reserve(1e-9)
    survivor.close()
    client.close()


def test_leases_of_large_budgets_stay_readable(shared: tuple[str, str]) -> None:
    """A lease of $100,000 or more is 1e14 nano-dollars: written as an integer (Lua's
    default number format would make it '1.6e+14', read back as corrupt and deleted)."""
    url, prefix = shared
    config = BudgetConfig(name="g", limit_usd=10_000_000.0, period="total")
    budgets = leased(url, prefix, [config], "r", settle_s=0.05)  # idle pools kept ~1 s
    wait_for_pools(budgets, 10_000.0)
    counters = budgets.counters
    assert isinstance(counters, RedisCounters) and counters.pools is not None
    key = f"{prefix}:budget:g:*:all"
    pool = counters.pools._pools[key]
    assert pool.lease >= 10**14
    client = redis.Redis.from_url(url)
    for _ in range(3):  # still there, unchanged, after the scripts that read it
        value = client.hget(lease_key(key), "r")
        assert value is not None and re.fullmatch(rb"\d+:\d+", value), value
        assert int(value.split(b":")[0]) == pool.lease
        hold = budgets.reserve(10_000.0)
        assert hold is not None
        budgets.settle(hold, 0.0)
        time.sleep(0.05)
    budgets.close()
    assert client.hlen(lease_key(key)) == 0
    client.close()


def test_close_gives_pools_and_leases_back(shared: tuple[str, str]) -> None:
    url, prefix = shared
    config = BudgetConfig(name="g", limit_usd=5.0, period="month")
    budgets = leased(url, prefix, [config], "r")
    wait_for_pools(budgets, 0.01)
    for _ in range(20):
        hold = budgets.reserve(0.01)
        assert hold is not None
        budgets.settle(hold, 0.004)
    assert budgets.spent(config) == pytest.approx(20 * 0.004)  # the pool is not spend
    client = redis.Redis.from_url(url)
    key = hold.keys[0]
    assert int(client.get(key) or 0) > 20 * 4_000_000  # while running: the pool is in it
    budgets.close()
    assert int(client.get(key) or 0) == 20 * 4_000_000
    assert client.hlen(lease_key(key)) == 0
    assert 0 < client.ttl(key) <= 40 * 86_400  # the counter still expires with its period
    client.close()


def test_soft_budgets_still_warn_with_leases(
    shared: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    url, prefix = shared
    configs = [
        BudgetConfig(name="hard", limit_usd=100.0, period="day"),
        BudgetConfig(name="soft", scope="user", limit_usd=0.05, period="day", mode="soft"),
    ]
    budgets = leased(url, prefix, configs, "r")
    wait_for_pools(budgets, 0.01, user="ann")
    warnings = []
    for _ in range(10):
        hold = budgets.reserve(0.01, user="ann")
        assert hold is not None
        warnings.append(hold.warning)
        budgets.settle(hold, 0.01)
    assert warnings[0] is None
    assert warnings[-1] is not None and "soft" in warnings[-1] and "user ann" in warnings[-1]
    assert "soft budget over its limit" in caplog.text
    assert budgets.spent(configs[1], "ann") == pytest.approx(0.1)
    other = leased(url, prefix, configs, "other")  # another replica sees the soft spend
    hold = other.reserve(0.01, user="ann")
    assert hold is not None and hold.warning is not None
    other.settle(hold, 0.0)
    budgets.close()
    other.close()


def test_per_key_budgets_with_leases(shared: tuple[str, str]) -> None:
    url, prefix = shared
    configs = [
        BudgetConfig(name="all", limit_usd=100.0, period="day"),
        BudgetConfig(name="team", scope="key", match="TEAM_KEY", limit_usd=0.5, period="day"),
    ]
    replicas = [leased(url, prefix, configs, f"r{i}") for i in range(2)]
    granted = 0
    for index in range(400):
        try:
            hold = replicas[index % 2].reserve(0.01, api_key_id="TEAM_KEY")
        except BudgetExceeded as exc:
            assert "'team'" in str(exc)
            continue
        assert hold is not None
        granted += 1
        if index % 50 == 0:
            time.sleep(0.03)  # let the pools refill
    assert granted <= 50  # $0.50 at $0.01 a call
    assert granted >= 40
    for _ in range(30):  # other keys are not under the team's budget
        assert replicas[0].reserve(0.01, api_key_id="OTHER_KEY") is not None
    for budgets in replicas:
        budgets.close()
    reader = leased(url, prefix, configs, "reader")
    assert reader.spent(configs[1], "TEAM_KEY") == pytest.approx(granted * 0.01)
    assert reader.spent(configs[0]) == pytest.approx((granted + 30) * 0.01)
    reader.close()


def test_redis_down_refuses_once_the_pools_are_empty(shared: tuple[str, str]) -> None:
    """Pools already drawn may be spent; past them, calls are refused, not spent unchecked."""
    from llmrouter.budgets import BudgetUnavailable

    url, prefix = shared
    config = BudgetConfig(name="g", limit_usd=10.0, period="day")
    budgets = leased(url, prefix, [config], "r")
    wait_for_pools(budgets, 0.01)
    counters = budgets.counters
    assert isinstance(counters, RedisCounters)

    def down(**_: object) -> None:
        raise redis.ConnectionError("Connection refused")

    counters._lease_script = down  # type: ignore[assignment]
    with pytest.raises(BudgetUnavailable):
        for _ in range(10_000):
            budgets.reserve(0.01)
    counters._settlements.stop().done.wait(5)  # no close: Redis is "down"


def by_hand(
    url: str, prefix: str, config: BudgetConfig, replica: str
) -> tuple[Budgets, RedisCounters]:
    """A replica whose settling thread is stopped: the test runs each sync round itself."""
    budgets = leased(url, prefix, [config], replica)
    counters = budgets.counters
    assert isinstance(counters, RedisCounters) and counters.pools is not None
    counters._settlements.stop().done.wait(5)
    return budgets, counters


@pytest.mark.parametrize("fault", ["calls_meanwhile", "reply_lost", "not_run"])
def test_a_pool_given_back_is_never_spent_or_given_back_twice(
    shared: tuple[str, str], fault: str
) -> None:
    """A pool shrinks to nothing (a large call makes it too small to keep) and is given back.
    While the give-back is in flight, calls must not spend it; if its reply is lost (or the
    script fails), the next round must not give it back again. Then another replica takes
    all the room Redis shows: the hard limit still holds."""
    url, prefix = shared
    config = BudgetConfig(name="g", limit_usd=1.0, period="total")
    (budgets_a, a), (budgets_b, b) = (by_hand(url, prefix, config, r) for r in "ab")
    key = f"{prefix}:budget:g:*:all"
    granted = 0

    def take(budgets: Budgets, usd: float) -> Hold:
        nonlocal granted
        hold = budgets.reserve(usd)
        assert hold is not None
        granted += hold.reserved  # never settled: each call costs its worst case
        return hold

    assert take(budgets_a, 0.001).cells is None  # no pool yet: reserved alone, pool asked for
    a._sync_pools()
    assert a.pools is not None
    pool = a.pools._pools[key]
    assert -pool.cell[0] == 16 * 1_000_000  # a pool of 16 calls
    take(budgets_a, 0.5)  # too large for the pool: the pool is no longer worth keeping
    real = a._lease_script
    during: list[int] = []
    faults = [fault]  # the first give-back only
    client = redis.Redis.from_url(url)

    def script(keys: list[str], args: list[object]) -> object:
        want = int(args[4])  # type: ignore[call-overload]
        if want >= 0 or not faults:
            return real(keys=keys, args=args)
        faults.clear()
        if fault == "calls_meanwhile":  # the round trip is in flight: calls keep coming
            while take(budgets_a, 0.001).cells is not None:
                during.append(1)
            return real(keys=keys, args=args)
        if fault == "reply_lost":
            real(keys=keys, args=args)
        raise redis.TimeoutError("Timeout reading from socket")

    def fill() -> None:
        """Another replica takes all the room Redis shows."""
        while True:
            try:
                take(budgets_b, 0.001)
            except BudgetExceeded:
                return
            b._sync_pools()  # its pools refill from whatever room is left

    a._lease_script = script  # type: ignore[assignment]
    a._sync_pools()
    fill()
    a._sync_pools()  # the next round (after a failure: gives nothing back again)
    fill()
    a._lease_script = real  # type: ignore[assignment]
    a._sync_pools()
    b._sync_pools()
    assert granted <= NANOS  # the limit holds
    assert not during  # nothing was taken from a pool being given back
    assert pool.cell[0] == 0
    stranded = 16 * 1_000_000 if fault == "not_run" else 0  # stays counted: refusing side
    assert granted == NANOS - stranded  # and nothing else is lost
    leases = sum(int(value.split(b":")[0]) for value in client.hvals(lease_key(key)))
    assert int(client.get(key) or 0) + leases <= NANOS
    client.close()


def test_one_large_call_does_not_stop_pooling_for_good(shared: tuple[str, str]) -> None:
    """A large call makes the pool too small to keep (given back; calls reserve alone), but
    once such calls stop, the size it demanded decays and small calls are pooled again."""
    url, prefix = shared
    config = BudgetConfig(name="g", limit_usd=100.0, period="total")
    budgets, counters = by_hand(url, prefix, config, "r")  # settlements are never sent
    assert counters.pools is not None
    key = f"{prefix}:budget:g:*:all"
    hold = budgets.reserve(0.001)
    assert hold is not None and hold.cells is None  # no pool yet
    counters._sync_pools()
    assert counters.pools._pools[key].target > 0
    hold = budgets.reserve(50.0)  # misses the pool
    assert hold is not None and hold.cells is None
    counters._sync_pools()
    pool = counters.pools._pools[key]
    assert pool.target == 0 and pool.cell[0] == 0  # not worth keeping: given back
    pooled = False
    for _ in range(2000):  # ~100 s of sync rounds, small calls (missing) but no large one
        hold = budgets.reserve(0.001)
        assert hold is not None
        if hold.cells is not None:
            pooled = True
            break
        counters._sync_pools()
    assert pooled
    assert pool.largest < 50 * NANOS
    budgets.close()
