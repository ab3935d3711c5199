"""Membership-inference audit (fedcl.privacy.audit) and `fedcl experiment audit` in --quick mode."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from fedcl.cli import app
from fedcl.config import FedCLConfig
from fedcl.data import NodeSplit
from fedcl.experiments._audit import ATTACKS, COLUMNS
from fedcl.federated import run_federation
from fedcl.model import initial_encoder
from fedcl.pipeline import scaled_training_rows, trained_encoder
from fedcl.privacy.audit import (
    AuditRows,
    CuriousServer,
    audit_rows,
    dp_advantage_bound,
    encoder_loss_scores,
    loss_drop_scores,
    membership_advantage,
    membership_metrics,
    tpr_at_fpr,
    tracing_scores,
    view_alignment,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()
N_FEATURES = 20


@pytest.fixture(scope="module")
def overfitted(one_torch_thread):
    """A tiny federation of one node that trains 5 rounds × 20 epochs on its 20 rows, under a curious server:
    (config, final encoder, the audited rows, the server, 200 more held-out rows)."""
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((620, N_FEATURES)).astype(np.float32))
    members, non_members, reference, other = x[:20], x[20:220], x[220:420], x[420:]
    config = FedCLConfig(rounds=5, local_epochs=20, batch_size=20, seed=0, aggregation="fedavg")
    rows = AuditRows(members, non_members, reference)
    server = CuriousServer(initial_encoder(config, N_FEATURES), {"node": rows}, config)
    result = run_federation({"node": members}, config, on_updates=server)
    return config, trained_encoder(config, result.arrays, N_FEATURES), rows, server, other


def initial(config: FedCLConfig) -> torch.nn.Module:
    return initial_encoder(config, N_FEATURES)


def test_every_attack_finds_the_members_of_an_overfitted_encoder(overfitted):
    # Prepare
    config, encoder, rows, server, _ = overfitted

    # Execute
    auroc = {name: membership_metrics(rows.is_member, scores)["auroc"] for name, scores in {
        "encoder loss": encoder_loss_scores(encoder, rows.candidates, config),
        "view alignment": view_alignment(encoder, rows.candidates, config),
        "loss drop from θ_0": loss_drop_scores(initial(config), encoder, rows.candidates, config),
        **{attack: by_node["node"] for attack, by_node in server.scores_.items()}}.items()}

    # Assert: each attack clearly above chance (the last round's drop alone is not asserted: once the
    # members' loss is at its floor, a late update can lower the non-members' more)
    assert set(server.scores_) == {"update loss drop, last round", "update loss drop, all rounds",
                                   "tracing on μ_i, last round", "tracing on μ_i, all rounds"}
    for attack in ("encoder loss", "view alignment", "loss drop from θ_0", "update loss drop, all rounds",
                   "tracing on μ_i, last round", "tracing on μ_i, all rounds"):
        assert auroc[attack] > 0.6, (attack, auroc[attack])


def test_attacks_read_chance_when_no_row_is_a_member(overfitted):
    # Prepare: two samples of rows the encoder never saw, scored as "members" against "non-members"
    config, encoder, rows, _, other = overfitted
    held_out = AuditRows(rows.non_members, other, rows.reference)

    # Execute
    loss = membership_metrics(held_out.is_member, encoder_loss_scores(encoder, held_out.candidates, config))
    trace = membership_metrics(held_out.is_member, tracing_scores(encoder, held_out.candidates, held_out.reference,
                                                                  embed_mean(encoder, rows.members)))

    # Assert: AUROC within noise of 0.5 (200 rows a side: its std is about 0.03)
    assert abs(loss["auroc"] - 0.5) < 0.1 and abs(trace["auroc"] - 0.5) < 0.1


def embed_mean(encoder, rows: torch.Tensor) -> np.ndarray:
    """μ of ``rows``' embeddings, as a node releases it in the clear."""
    from fedcl.federated.local import embed

    return embed(encoder, rows).mean(dim=0).numpy().astype(np.float64)


def test_loss_drop_is_zero_when_the_update_is_zero(overfitted):
    # Same encoder before and after, same seed: the same views, so exactly no drop
    config, encoder, rows, _, _ = overfitted
    assert np.array_equal(loss_drop_scores(encoder, encoder, rows.candidates, config, seed=3),
                          np.zeros(len(rows.candidates)))


def test_metrics_on_hand_made_scores():
    # Prepare: members 0.9, 0.8, 0.3 against non-members 0.7, 0.2, 0.1
    is_member = np.array([1, 1, 1, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.1])

    # Execute
    metrics = membership_metrics(is_member, scores)

    # Assert: 8 of 9 pairs ordered; t = 0.8 gives TPR 2/3 at FPR 0 (t = 0.3: 1 at 1/3)
    assert metrics["auroc"] == pytest.approx(8 / 9)
    assert metrics["advantage"] == pytest.approx(2 / 3)
    assert metrics["tpr_at_1pct_fpr"] == pytest.approx(2 / 3)
    assert tpr_at_fpr(is_member, scores, fpr_target=1 / 3) == pytest.approx(1.0)


def test_advantage_matches_a_slow_loop_over_thresholds():
    rng = np.random.default_rng(1)
    is_member = rng.integers(0, 2, 300)
    scores = rng.normal(size=300) + 0.5 * is_member
    slow = max(np.mean(scores[is_member == 1] >= t) - np.mean(scores[is_member == 0] >= t)
               for t in [*scores, np.inf])
    assert membership_advantage(is_member, scores) == pytest.approx(slow)


def test_metrics_of_perfect_and_useless_attacks():
    is_member = np.r_[np.ones(50), np.zeros(50)]
    perfect = membership_metrics(is_member, is_member + 0.1)
    useless = membership_metrics(is_member, np.zeros(100))
    assert perfect == {"auroc": 1.0, "advantage": 1.0, "tpr_at_1pct_fpr": 1.0}
    assert useless == {"auroc": 0.5, "advantage": 0.0, "tpr_at_1pct_fpr": 0.0}
    with pytest.raises(ValueError, match="finite"):
        membership_metrics(is_member, np.full(100, np.nan))


def test_dp_advantage_bound():
    assert dp_advantage_bound(1.0, 0.0) == pytest.approx(math.tanh(0.5))  # (e − 1)/(e + 1)
    assert dp_advantage_bound(8.0, 1e-5) == pytest.approx((math.exp(8) - 1 + 2e-5) / (math.exp(8) + 1))
    assert dp_advantage_bound(math.inf, 1e-5) == 1.0
    assert dp_advantage_bound(0.5, 1e-5) < dp_advantage_bound(1.0, 1e-5) < dp_advantage_bound(8.0, 1e-5) < 1
    with pytest.raises(ValueError, match="positive"):
        dp_advantage_bound(0.0, 1e-5)


def test_audit_rows_are_balanced_disjoint_and_scaled_as_the_node_scales():
    # Prepare: every row distinct (its first cell is its index)
    rows = np.random.default_rng(2).random((100, N_FEATURES)) + 1
    rows[:, 0] = np.arange(100)
    split = NodeSplit("n", rows[:60], rows[60:80], rows[80:], rows[:0], np.array([], dtype=str),
                      tuple(f"c{i}" for i in range(N_FEATURES)), ())
    config = FedCLConfig(seed=4)

    # Execute
    audit = audit_rows(split, config)

    # Assert: 20 reference, 20 scored non-members, 20 members; members are rows of the node's scaled window
    assert (len(audit.members), len(audit.non_members), len(audit.reference)) == (20, 20, 20)
    scaled = scaled_training_rows(split, config).float()
    assert all((scaled == m).all(dim=1).any() for m in audit.members)
    held_out = {round(float(v), 4) for v in torch.cat([audit.non_members, audit.reference])[:, 0]}
    assert len(held_out) == 40 and not held_out & {round(float(v), 4) for v in audit.members[:, 0]}
    assert audit.is_member.tolist() == [1.0] * 20 + [0.0] * 20


def test_quick_audit_writes_every_attack_then_resumes(fedmse_slice, tmp_path):
    # Prepare
    command = ["experiment", "audit", "--data", str(fedmse_slice), "--out", str(tmp_path), "--quick",
               "--seeds", "1", "--epsilons", "8,inf"]

    # Execute: the whole grid, then the same command again
    first = runner.invoke(app, command)
    written = (tmp_path / "results.csv").read_text()
    again = runner.invoke(app, command)

    # Assert: one row per (ε, attack) with the expected columns and the bound; nothing re-ran
    assert first.exit_code == 0, first.output
    rows = pd.read_csv(tmp_path / "results.csv")
    assert list(rows.columns) == COLUMNS
    assert sorted(zip(rows["epsilon"], rows["attack"])) == sorted((e, a) for e in (8.0, math.inf) for a in ATTACKS)
    assert rows["mean_auroc"].between(0, 1).all() and (rows["max_advantage"] >= rows["mean_advantage"]).all()
    assert set(rows.groupby("epsilon")["bound"].first().round(4)) == {1.0, round(dp_advantage_bound(8.0, 1e-5), 4)}
    assert (rows[rows["epsilon"] == 8.0]["epsilon_spent"] <= 8.0).all()
    assert (tmp_path / "audit.png").stat().st_size > 0 and "| natural | 8 | encoder loss |" in (
        tmp_path / "audit.md").read_text()
    assert again.exit_code == 0 and (tmp_path / "results.csv").read_text() == written


def test_bad_epsilons_and_cells_exit_2_in_one_line(fedmse_slice, tmp_path):
    for extra, message in ((["--epsilons", "0,1"], "--epsilons must be positive"),
                           (["--cell", "nope"], "no cell named nope")):
        result = runner.invoke(app, ["experiment", "audit", "--data", str(fedmse_slice), "--out", str(tmp_path),
                                     "--quick", *extra])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
