"""The hybrid logical clock (sync-protocol.md §6.2) and timestamp parsing."""

from __future__ import annotations

import math

import pytest

from gdbnb.core.hlc import DRIFT_CAP_MS, HybridClock, Timestamp, parse_timestamp

T0 = 1_795_940_761_000


class Wall:
    """A settable fake ``Date.now()``."""

    def __init__(self, ms: int = T0) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_timestamp_order_is_physical_then_logical():
    assert Timestamp(1, 9) < Timestamp(2, 0)
    assert Timestamp(2, 1) < Timestamp(2, 2)
    assert Timestamp(2, 2) == Timestamp(2, 2)
    assert sorted([Timestamp(3, 0), Timestamp(1, 5), Timestamp(1, 2)]) == [
        Timestamp(1, 2),
        Timestamp(1, 5),
        Timestamp(3, 0),
    ]


def test_to_json_key_order():
    assert list(Timestamp(5, 6).to_json().items()) == [("physical", 5), ("logical", 6)]


def test_fresh_clock_starts_at_wall_with_logical_zero():
    c = HybridClock(wall=Wall())
    assert c.current() == Timestamp(T0, 0)


def test_now_increments_logical_and_never_resets_it():
    w = Wall()
    c = HybridClock(wall=w)
    assert c.now() == Timestamp(T0, 1)
    assert c.now() == Timestamp(T0, 2)
    w.ms += 10
    # logical is a Lamport counter: it keeps counting when physical time advances
    assert c.now() == Timestamp(T0 + 10, 3)


def test_now_is_monotonic_when_wall_goes_backwards():
    w = Wall()
    c = HybridClock(wall=w)
    a = c.now()
    w.ms -= 5000
    b = c.now()
    assert b > a and b.physical == T0


def test_update_takes_max_physical_and_max_logical_plus_one():
    c = HybridClock(wall=Wall())
    c.now()  # (T0, 1)
    c.update(Timestamp(T0 + 100, 7))
    assert c.current() == Timestamp(T0 + 100, 8)
    c.update(Timestamp(T0 - 100, 2))  # older remote: only logical advances
    assert c.current() == Timestamp(T0 + 100, 9)
    assert c.now() == Timestamp(T0 + 100, 10)


def test_update_makes_next_now_newer_than_remote():
    c = HybridClock(wall=Wall())
    r = Timestamp(T0 + 5, 40)
    c.update(r)
    assert c.now() > r


def test_compare_missing_sorts_before_present():
    # the reference compare(): missing < present. In Python, parse failures give None and the
    # callers treat None as "no timestamp"; tuple order covers present values.
    assert parse_timestamp(None) is None


def test_restore_from_persisted_global_timestamp():
    c = HybridClock(wall=Wall())
    c.restore(Timestamp(T0 + 50, 12))
    assert c.current() == Timestamp(T0 + 50, 12)
    assert c.now() == Timestamp(T0 + 50, 13)
    c.restore(None)  # nothing persisted: unchanged
    assert c.current() == Timestamp(T0 + 50, 13)
    c.restore(Timestamp(T0, 1))  # never goes backwards
    assert c.current() == Timestamp(T0 + 50, 13)


def test_start_argument_restores_and_keeps_wall_when_ahead():
    c = HybridClock(Timestamp(T0 - 10, 4), wall=Wall())
    assert c.current() == Timestamp(T0, 4)
    c2 = HybridClock(Timestamp(T0 + 10, 4), wall=Wall())
    assert c2.current() == Timestamp(T0 + 10, 4)


def test_drift_cap_is_two_hours():
    assert DRIFT_CAP_MS == 7_200_000


def test_capped_keeps_logical_and_caps_physical():
    now = T0
    far = Timestamp(now + DRIFT_CAP_MS + 1, 33)
    assert far.capped(now) == Timestamp(now + DRIFT_CAP_MS, 33)
    edge = Timestamp(now + DRIFT_CAP_MS, 33)
    assert edge.capped(now) is edge
    near = Timestamp(now + 5, 1)
    assert near.capped(now) is near
    year2100 = Timestamp(4_102_444_800_000, 2)
    assert year2100.capped(now) == Timestamp(now + DRIFT_CAP_MS, 2)


@pytest.mark.parametrize(
    "obj,expected",
    [
        ({"physical": 5, "logical": 0}, Timestamp(5, 0)),
        ({"physical": 0, "logical": 0}, Timestamp(0, 0)),
        ({"physical": 5.0, "logical": 2.0}, Timestamp(5, 2)),  # JS numbers: integral floats
        ({"logical": 2, "physical": 5, "extra": "x"}, Timestamp(5, 2)),
        ({"physical": 2**53 - 1, "logical": 2**53 - 1}, Timestamp(2**53 - 1, 2**53 - 1)),
    ],
)
def test_parse_timestamp_accepts(obj, expected):
    ts = parse_timestamp(obj)
    assert ts == expected
    assert type(ts.physical) is int and type(ts.logical) is int


@pytest.mark.parametrize(
    "obj",
    [
        None,
        [5, 1],
        "5:1",
        {"physical": 5},
        {"logical": 1},
        {},
        {"physical": -1, "logical": 0},
        {"physical": 5, "logical": -1},
        {"physical": 5.5, "logical": 0},
        {"physical": 5, "logical": 0.25},
        {"physical": math.nan, "logical": 0},
        {"physical": 5, "logical": math.nan},
        {"physical": math.inf, "logical": 0},
        {"physical": 5, "logical": -math.inf},
        {"physical": True, "logical": 0},
        {"physical": 5, "logical": False},
        {"physical": "5", "logical": 0},
        {"physical": 5, "logical": "0"},
        {"physical": None, "logical": 0},
        {"physical": 2**53, "logical": 0},
        {"physical": 5, "logical": 2**53},
        {"physical": 2**64, "logical": 0},
        {"physical": float(2**60), "logical": 0},
        {"physical": [5], "logical": 0},
    ],
)
def test_parse_timestamp_rejects(obj):
    assert parse_timestamp(obj) is None


def test_parse_timestamp_passes_valid_timestamp_through():
    ts = Timestamp(5, 6)
    assert parse_timestamp(ts) == ts


@pytest.mark.parametrize(
    "bad",
    [Timestamp(-1, 0), Timestamp(1, -1), Timestamp(2**53, 0), Timestamp(1.5, 0), Timestamp(True, 1)],
)
def test_parse_timestamp_revalidates_timestamp_instances(bad):
    assert parse_timestamp(bad) is None
