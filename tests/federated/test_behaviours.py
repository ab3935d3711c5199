"""Tests for the adaptive attacks: each forges what its paper says, and passes or fails the server's
screens as designed (against the real rules of fedcl.federated.robust and aggregate)."""

from statistics import NormalDist

import numpy as np
import pytest
import torch

from fedcl.config import FedCLConfig
from fedcl.federated import LocalUpdate, aggregate_round, run_federation
from fedcl.federated.behaviours import (
    ADAPTIVE,
    BEHAVIOURS,
    RoundContext,
    alie_z,
    boost_within_clip,
    flatten,
    min_max_update,
    min_sum_update,
    mimicked,
)
from fedcl.federated.robust import krum_selection

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ARRAYS = [np.zeros((12, 8), np.float32), np.zeros(8, np.float32)]  # θ: 104 parameters
N, BAD = 10, 2  # the case: 2 of 10 nodes attack


def round_updates(n=N, spread=0.05, seed=1):
    """n honest updates that agree on a direction, with spread around it, and varied statistics."""
    rng = np.random.default_rng(seed)
    common = [rng.normal(size=a.shape) * 0.1 for a in ARRAYS]
    return [LocalUpdate([(c + rng.normal(size=c.shape) * spread).astype(np.float32) for c in common],
                        100 + 10 * i, rng.normal(size=3), 1.0 + rng.random(), 1.0 + rng.random(), rng.random(),
                        0.5 + rng.random(3))
            for i in range(n)]


def forge(name, updates=None, bad=BAD, rule="dynamic-guarded"):
    """The round as the server receives it: the first ``bad`` updates forged by ``name``, then the honest ones."""
    updates = round_updates() if updates is None else updates
    context = RoundContext(honest=tuple(updates[bad:]), colluders=tuple(updates[:bad]), rule=rule)
    forged = [BEHAVIOURS[name](u, None, np.random.default_rng(i), context) for i, u in enumerate(updates[:bad])]
    return forged + updates[bad:], context


def test_alie_z_is_baruch_et_al_z_max():
    # n = 10, f = 2: s = ⌊10/2 + 1⌋ − 2 = 4, z = Φ⁻¹(6/10); n = 3, f = 1: s = 1, z = Φ⁻¹(2/3)
    assert alie_z(10, 2) == pytest.approx(NormalDist().inv_cdf(0.6))
    assert alie_z(3, 1) == pytest.approx(NormalDist().inv_cdf(2 / 3))
    assert alie_z(50, 24) == pytest.approx(NormalDist().inv_cdf(48 / 50))  # s = 26 − 24 = 2
    assert alie_z(50, 30) == pytest.approx(NormalDist().inv_cdf(49 / 50))  # s floored at 1: no infinite z
    assert alie_z(10, 1) < alie_z(10, 2) < alie_z(10, 3)  # more colluders can afford a larger shift


def test_alie_sends_mean_minus_z_std_coordinate_by_coordinate():
    sent, context = forge("alie")

    benign = flatten(context.benign)
    z = alie_z(N, BAD)
    for k in range(0, benign.shape[1], 13):  # the paper's formula, one coordinate at a time
        values = benign[:, k]
        expected = values.mean() - z * np.sqrt(((values - values.mean()) ** 2).mean())
        assert flatten(sent[:1])[0, k] == pytest.approx(expected, abs=1e-6)
    np.testing.assert_array_equal(flatten(sent[:1]), flatten(sent[1:2]))  # colluders send the same update


@pytest.mark.parametrize("name, epsilon", [("ipm", 0.5), ("ipm-large", 10.0)])
def test_ipm_sends_minus_epsilon_times_the_honest_mean(name, epsilon):
    sent, context = forge(name)

    np.testing.assert_allclose(flatten(sent[:1])[0], -epsilon * flatten(context.benign).mean(axis=0), atol=1e-6)


def _slow_largest_gamma(quadratics):
    """The exact γ: for each constraint a γ² + b γ + c ≤ 0 its larger root, the smallest over them."""
    roots = [(-b + np.sqrt(b * b - 4 * a * c)) / (2 * a) for a, b, c in quadratics]
    return min(roots)


def test_min_max_takes_the_largest_gamma_whose_max_distance_stays_within_the_honest_max():
    benign = flatten(round_updates())
    centre, p = benign.mean(axis=0), -benign.std(axis=0)
    bound = max(np.sum((x - y) ** 2) for x in benign for y in benign)
    # ‖c + γp − x_i‖² ≤ bound is p·p γ² + 2 p·(c − x_i) γ + ‖c − x_i‖² − bound ≤ 0, for every i
    terms = [(p @ p, 2 * p @ (centre - x), (centre - x) @ (centre - x) - bound) for x in benign]
    gamma = _slow_largest_gamma(terms)

    forged = min_max_update(benign)

    np.testing.assert_allclose(forged, centre + gamma * p, rtol=1e-6)
    assert gamma > 0
    assert max(np.sum((forged - x) ** 2) for x in benign) == pytest.approx(bound, rel=1e-6)  # as far as allowed


def test_min_sum_takes_the_largest_gamma_whose_sum_of_squared_distances_stays_within_the_honest_max():
    benign = flatten(round_updates())
    centre, p = benign.mean(axis=0), -benign.std(axis=0)
    bound = max(sum(np.sum((x - y) ** 2) for y in benign) for x in benign)
    # Σ_i ‖c + γp − x_i‖² = n p·p γ² + Σ_i ‖c − x_i‖² (the cross terms cancel: c is the mean)
    gamma = np.sqrt((bound - sum(np.sum((centre - x) ** 2) for x in benign)) / (len(benign) * p @ p))

    forged = min_sum_update(benign)

    np.testing.assert_allclose(forged, centre + gamma * p, rtol=1e-6)


def test_mimic_copies_the_honest_node_most_unlike_the_rest_whole():
    updates = round_updates()
    odd = updates[6]
    updates[6] = LocalUpdate([d + 0.3 for d in odd.delta], *[getattr(odd, f) for f in
                                                            ("n_samples", "mean_embedding", "distance", "loss",
                                                             "contrastive", "std_embedding")])
    sent, context = forge("mimic", updates)

    assert mimicked(context.honest) == 4  # updates[6] is the 5th honest node
    assert sent[0] is updates[6] and sent[1] is updates[6]  # Δθ and statistics alike


def test_adaptive_attackers_report_a_typical_honest_nodes_statistics():
    updates = round_updates()
    honest = updates[BAD:]

    for name in ("alie", "ipm", "min-max", "min-sum"):
        sent, _ = forge(name, updates)
        np.testing.assert_allclose(sent[0].mean_embedding, np.median([u.mean_embedding for u in honest], axis=0))
        np.testing.assert_allclose(sent[0].std_embedding, np.median([u.std_embedding for u in honest], axis=0))
        assert sent[0].n_samples == max(u.n_samples for u in honest)
        assert sent[0].loss == pytest.approx(np.median([u.loss for u in honest]))


# Designed outcome under the default rule: alie, min-max, min-sum and mimic stay along the honest
# direction and pass the direction screen; ipm and a sign-flip point against it and are set aside.
SCREENED = {"alie": False, "min-max": False, "min-sum": False, "mimic": False, "ipm": True, "ipm-large": True,
            "sign-flip": True}


@pytest.mark.parametrize("name", SCREENED)
def test_the_guarded_rule_sets_aside_exactly_the_attacks_that_point_away(name):
    sent, _ = forge(name)

    step = aggregate_round(ARRAYS, sent, "dynamic-guarded")

    assert all(r is None for r in step.reasons[BAD:]) and np.all(step.weights[BAD:] > 0)  # honest nodes kept
    if SCREENED[name]:
        assert np.all(step.weights[:BAD] == 0) and all("points away" in r for r in step.reasons[:BAD])
    else:
        assert np.all(step.weights[:BAD] > 0) and step.reasons[:BAD] == [None] * BAD
        # typical statistics buy a typical weight, never more than the largest honest one
        assert step.weights[:BAD].max() <= step.weights[BAD:].max() + 1e-12


def test_alie_stays_inside_the_median_norm_clip_and_min_max_reaches_it():
    for name, inside in (("alie", True), ("min-max", False)):
        sent, _ = forge(name)
        norms = np.linalg.norm(flatten(sent), axis=1)
        assert (norms[0] <= np.median(norms)) == inside


@pytest.mark.parametrize("name", ["alie", "min-max", "min-sum", "mimic"])
def test_krum_picks_the_attackers_that_sit_among_the_honest_updates(name):
    # Two colluders sending one update are each other's nearest neighbour: Krum's score favours them.
    sent, _ = forge(name)

    assert krum_selection(sent, 0)[0] in range(BAD)
    assert krum_selection(forge("sign-flip")[0], 0)[0] not in range(BAD)


def test_boosted_update_keeps_its_direction_at_the_median_honest_norm():
    updates = round_updates()
    context = RoundContext(tuple(updates[BAD:]), tuple(updates[:BAD]), "fedavg")
    small = LocalUpdate([0.1 * d for d in updates[0].delta], *[getattr(updates[0], f) for f in
                                                               ("n_samples", "mean_embedding", "distance", "loss",
                                                                "contrastive", "std_embedding")])

    sent = boost_within_clip(small, None, np.random.default_rng(0), context)

    own, out = flatten([small])[0], flatten([sent])[0]
    assert np.linalg.norm(out) == pytest.approx(np.median(np.linalg.norm(flatten(context.honest), axis=1)), rel=1e-5)
    assert own @ out / (np.linalg.norm(own) * np.linalg.norm(out)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("name", ADAPTIVE)
def test_adaptive_attacks_need_the_round_context(name):
    with pytest.raises(ValueError, match="context"):
        BEHAVIOURS[name](round_updates()[0], None, np.random.default_rng(0))


def test_names_have_no_spaces_and_the_first_results_names_still_work():
    assert all(" " not in name for name in BEHAVIOURS)
    assert BEHAVIOURS["scaled x10"] is BEHAVIOURS["scaled"]
    assert BEHAVIOURS["lying d=0 + flip x10"] is BEHAVIOURS["lying"]
    with pytest.raises(KeyError):
        BEHAVIOURS["scaled x100"]


def test_the_runner_shows_attackers_the_rounds_honest_updates():
    gen = torch.Generator().manual_seed(0)
    rows = {f"n{i}": torch.randn(40, 115, generator=gen) for i in range(5)}
    config = FedCLConfig(rounds=3, batch_size=16, embedding_dim=4, hidden=8, aggregation="median")
    seen = []

    def spy(update, reference, rng, context=None):
        seen.append((update, context))
        return BEHAVIOURS["alie"](update, reference, rng, context)

    result = run_federation(rows, config, behaviours={"n0": spy, "n3": spy})

    assert len(seen) == 2 * config.rounds
    for update, context in seen:
        assert context.rule == "median" and context.n_attackers == 2 and len(context.honest) == 3
        assert any(update is c for c in context.colluders)  # its own honest update, before forging
    assert all(np.isfinite(a).all() for a in result.arrays)
