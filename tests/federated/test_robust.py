"""Tests for the robust server rules, the simulated attackers and dropouts."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from flwr.server.strategy.aggregate import aggregate_krum, aggregate_median, aggregate_trimmed_avg

from fedcl.config import FedCLConfig
from fedcl.federated import LocalUpdate, aggregate_round, run_federation
from fedcl.federated.behaviours import BEHAVIOURS, lying
from fedcl.federated.robust import assumed_malicious, krum_selection
from fedcl.federated.runner import participants

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RNG = np.random.default_rng(0)
ARRAYS = [RNG.normal(size=(40, 30)).astype(np.float32), RNG.normal(size=30).astype(np.float32)]


def honest_updates(n=10, spread=0.05):
    """n similar updates (the honest majority agrees), each with its statistics."""
    rng = np.random.default_rng(1)
    common = [rng.normal(size=a.shape) * 0.1 for a in ARRAYS]
    return [LocalUpdate([(c + rng.normal(size=c.shape) * spread).astype(np.float32) for c in common],
                        100 + 10 * i, rng.normal(size=2) * 0.5, 1.0 + 0.1 * rng.random(), 1.0, 1.0,
                        1.0 + 0.5 * rng.random(2))
            for i in range(n)]


def params(updates):
    return [([a + d for a, d in zip(ARRAYS, u.delta)], u.n_samples) for u in updates]


def close(theta, expected):
    return all(np.allclose(t, e, atol=1e-6) for t, e in zip(theta, expected))


def test_median_and_trimmed_mean_are_flowers_own():
    updates = honest_updates()

    median = aggregate_round(ARRAYS, updates, "median").arrays
    trimmed = aggregate_round(ARRAYS, updates, "trimmed-mean").arrays

    assert close(median, aggregate_median(params(updates)))
    assert close(trimmed, aggregate_trimmed_avg(params(updates), 0.2))
    assert [t.dtype for t in median] == [a.dtype for a in ARRAYS]


@pytest.mark.parametrize("rule, to_keep", [("krum", 0), ("multi-krum", 10 - assumed_malicious(10))])
def test_krum_matches_flower(rule, to_keep):
    updates = honest_updates()[:7] + [BEHAVIOURS["scaled x10"](u, None, RNG) for u in honest_updates()[7:]]

    step = aggregate_round(ARRAYS, updates, rule)
    theta, weights = step.arrays, step.weights

    assert close(theta, aggregate_krum(params(updates), assumed_malicious(10), to_keep))
    assert np.all(weights[7:] == 0)  # the scaled updates are never chosen
    assert all(("Krum keeps" in r) == (w == 0) for r, w in zip(map(str, step.reasons), weights))
    assert np.count_nonzero(weights) == max(to_keep, 1)
    assert set(krum_selection(updates, to_keep)) <= set(range(7))


@pytest.mark.parametrize("attack", ["sign-flip", "scaled x10", "random", "lying d=0 + flip x10", "free-rider"])
def test_guarded_dynamic_sets_updates_that_point_away_aside_and_bounds_the_rest(attack):
    updates = honest_updates()
    forged = [BEHAVIOURS[attack](u, np.zeros(2), np.random.default_rng(100 + i)) for i, u in enumerate(updates[:2])]

    clean = aggregate_round(ARRAYS, updates[2:], "dynamic-guarded")
    step = aggregate_round(ARRAYS, forged + updates[2:], "dynamic-guarded")
    plain = aggregate_round(ARRAYS, forged + updates[2:], "dynamic")

    assert step.weights.sum() == pytest.approx(1.0)
    assert step.reasons[2:] == [None] * 8 and np.all(step.weights[2:] > 0)  # no honest node set aside
    if attack in ("sign-flip", "lying d=0 + flip x10", "free-rider"):  # against, or not along, the others
        assert np.all(step.weights[:2] == 0)
        assert all("points away" in r for r in step.reasons[:2])
    # clipped to the median norm, a scaled or random update weighs no more than an honest one
    moved = max(np.abs(t - c).max() for t, c in zip(step.arrays, clean.arrays))
    moved_plain = max(np.abs(t - c).max() for t, c in zip(plain.arrays, clean.arrays))
    assert moved < 0.25 * moved_plain  # plain dynamic weighting follows the forged updates


def test_a_lying_node_gets_the_largest_plain_dynamic_weight_but_no_more_than_typical_when_guarded():
    updates = honest_updates()
    liar = lying(updates[0], np.zeros(2), RNG)
    liar = replace(liar, delta=updates[0].delta, mean_embedding=np.median([u.mean_embedding for u in updates], axis=0),
                   std_embedding=np.median([u.std_embedding for u in updates], axis=0))  # honest Δθ, statistics on the centre

    plain = aggregate_round(ARRAYS, [liar] + updates[1:], "dynamic").weights
    guarded = aggregate_round(ARRAYS, [liar] + updates[1:], "dynamic-guarded").weights

    assert plain[0] > np.max(plain[1:])  # the forged statistics buy the largest weight when trusted
    assert guarded[0] <= np.max(guarded[1:]) + 1e-12


def test_behaviours_forge_what_they_say():
    u = honest_updates()[0]
    g = np.array([0.5, -0.5])

    assert all(np.all(d == 0) for d in BEHAVIOURS["free-rider"](u, g, RNG).delta)
    assert all(np.array_equal(f, -d) for f, d in zip(BEHAVIOURS["sign-flip"](u, g, RNG).delta, u.delta))
    assert all(np.allclose(f, 10 * d) for f, d in zip(BEHAVIOURS["scaled x10"](u, g, RNG).delta, u.delta))
    random = BEHAVIOURS["random"](u, g, np.random.default_rng(0)).delta
    assert random[0].dtype == u.delta[0].dtype and 0.5 < np.concatenate([r.ravel() for r in random]).std() < 2
    liar = BEHAVIOURS["lying d=0 + flip x10"](u, g, RNG)
    assert liar.distance == 0 and np.array_equal(liar.mean_embedding, g)
    assert all(np.allclose(f, -10 * d) for f, d in zip(liar.delta, u.delta))


def test_participation_is_seeded_and_about_one_minus_dropout():
    present = np.stack([participants(10, 0.3, seed=0, round_=r) for r in range(1, 501)])

    assert present.any(axis=1).all()
    assert present.mean() == pytest.approx(0.7, abs=0.03)
    assert np.abs(present.mean(axis=0) - 0.7).max() < 0.08  # no node is left out more than others
    np.testing.assert_array_equal(participants(10, 0.3, 0, 7), participants(10, 0.3, 0, 7))


def test_dropouts_and_attackers_run_through_the_federation():
    gen = torch.Generator().manual_seed(0)
    rows = {f"n{i}": torch.randn(40, 115, generator=gen) for i in range(5)}
    config = FedCLConfig(rounds=4, batch_size=16, embedding_dim=4, hidden=8, aggregation="dynamic-guarded")

    result = run_federation(rows, config, behaviours={"n0": BEHAVIOURS["scaled x10"]}, dropout=0.3)

    present = [set(r["nodes"]) for r in result.history]
    assert any(len(p) < 5 for p in present) and all(p for p in present)
    assert all(np.isfinite(a).all() for a in result.arrays)
    with pytest.raises(ValueError, match="unknown nodes"):
        run_federation(rows, config, behaviours={"ghost": BEHAVIOURS["random"]})
    with pytest.raises(ValueError, match="dropout"):
        run_federation(rows, config, dropout=1.0)
