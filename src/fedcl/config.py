"""Run configuration: one frozen dataclass, built once at the edge (CLI or TOML) and passed down."""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from fedcl.errors import ConfigError
from fedcl.federated.compress import BITS

AGGREGATIONS = ("dynamic", "dynamic-guarded", "fedavg", "median", "trimmed-mean", "krum", "multi-krum")
# The rules that need only weighted sums, so they run under secure aggregation (fedcl.privacy): the
# others read each node's update.
SECURE_AGGREGATIONS = ("dynamic", "fedavg")
LAYOUTS = ("auto", "uci", "kaggle", "clients")
SCHEMAS = ("nbaiot", "auto")  # fedcl.data.SCHEMAS: N-BaIoT's 115 columns, or a header's numeric columns
GUARDS = ("on", "strict", "off")
DP_LEVELS = ("record", "node")  # what one unit of privacy is: a row of a node's window, or a whole node
PERSONALISATIONS = ("weighted", "tuned", "mean", "max", "off")  # "off" or a fedcl.model.COMBINE rule


@dataclass(frozen=True)
class FedCLConfig:
    """Every knob of a run; TOML keys and CLI options use these names (CLI with dashes)."""

    data: str = ""
    layout: str = "auto"
    schema: str = "nbaiot"  # or "auto": the numeric columns of any header, without the leakage guard
    # strict: mask every jitter mean/variance (the default: with "on", "a cell was masked" alone scores
    # AUROC 0.94 on fedmse-iid); on: mask only epoch-like jitter values; off: for comparison only
    leakage_guard: str = "strict"
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    rounds: int = 20
    local_epochs: int = 1
    local_steps: int = 0  # at most this many optimiser steps per node and round (0: no bound)
    # In federated training, a node of n rows runs ⌈min_rows_per_round / n⌉ epochs a round if that is more
    # than local_epochs (0: off): a few hundred rows are otherwise a step or two a round. Record-level DP
    # keeps local_epochs (its plan), and a node's own encoder (personalisation) one epoch a round (its
    # fine-tuned encoder under "tuned" keeps this rule, as measured).
    min_rows_per_round: int = 1000
    batch_size: int = 256
    lr: float = 1e-3
    temperature: float = 0.1
    consistency_weight: float = 0.1  # λ
    embedding_dim: int = 32
    hidden: int = 128
    encoder: str = "mlp"
    missing_mask: bool = False  # also feed the encoder which cells are missing (measured worse on fedmse-iid)
    aggregation: str = "dynamic-guarded"  # dynamic weights without trusting what nodes report
    # Mask each node's update and embedding statistics: the server learns only weighted sums (fedcl.privacy).
    secure_aggregation: bool = False
    # Bits per parameter of θ on the wire, each way: block-wise quantisation with error feedback
    # (fedcl.federated.compress); 0: float32, as trained.
    compression_bits: int = 0
    # Record-level differential privacy for each node's rows (fedcl.privacy.dp, docs/privacy.md): the whole
    # run spends at most (dp_epsilon, dp_delta); inf: off. dp_clip: the per-row gradient clip C of DP-SGD.
    dp_epsilon: float = math.inf
    dp_delta: float = 1e-5
    dp_clip: float = 1.0
    # dp_level "node": DP-FedAvg instead (fedcl.privacy.node_dp): each round the server samples each node with
    # probability dp_sample_rate, clips its update to dp_update_clip (about the median update norm on
    # fedmse-iid, development seed) and noises the sum; nodes train in the clear and release nothing else.
    dp_level: str = "record"
    dp_sample_rate: float = 1.0
    dp_update_clip: float = 0.5
    node_normalisation: bool = True
    mask_prob: float = 0.2
    noise_std: float = 0.1
    n_neighbors: int = 5
    n_references: int = 256  # k-means centroids of a node's benign training embeddings, at most
    rows_per_reference: int = 2  # and at most one per this many rows (1: a small node's rows themselves)
    validation_references: bool = False  # references from training and validation rows (threshold: the latter's scores before)
    relative_distance: bool = True  # scores in units of the references' spacing, so nodes' scores pool
    # At most this share of a node's training rows is left out of each round's local training and of its
    # references: dense groups of embeddings far from the rest (attack rows in the training window,
    # fedcl.model.island_rows); 0: off, the default: it costs on the simulated network (docs/results.md).
    trim_fraction: float = 0.0
    fpr_target: float = 0.01
    # Each node's detector also views its rows through an encoder trained on them alone and combines the
    # views' scores: "tuned" (the default) adds a third view, the federation's encoder fine-tuned on the
    # node, in a mean weighted per node from benign rows; "weighted" the first two so, "mean" or "max"
    # their plain mean or max; "off": the federation's encoder only (docs/benchmark.md).
    personalisation: str = "tuned"
    # > 0: a node accepts a row another node's federation view scores below this × its alarm line (each
    # node's federation-view detector is released to the others: docs/privacy.md); 0: off, the default:
    # attacks that look like another node's benign traffic are accepted too (docs/benchmark.md).
    acceptance_margin: float = 0.0
    acceptance_quorum: int = 1  # a row is accepted when this many other nodes' views agree (all, when fewer)
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.layout in LAYOUTS, f"layout must be one of {', '.join(LAYOUTS)}"),
            (self.leakage_guard in GUARDS, f"leakage_guard must be one of {', '.join(GUARDS)}"),
            (self.schema in SCHEMAS, f"schema must be one of {', '.join(SCHEMAS)}"),
            # The guard masks N-BaIoT's jitter columns, which another table does not have.
            (self.schema == "nbaiot" or self.leakage_guard == "off",
             f"schema {self.schema} needs leakage_guard off: the guard masks N-BaIoT's HH_jit columns only"),
            (self.aggregation in AGGREGATIONS, f"aggregation must be one of {', '.join(AGGREGATIONS)}"),
            (not self.secure_aggregation or self.aggregation in SECURE_AGGREGATIONS,
             f"aggregation {self.aggregation} cannot run under secure_aggregation: its screens (medians, trimmed "
             "means, Krum distances, clipping to the median norm, the direction screen) read each node's update, "
             "which masking hides; use dynamic or fedavg"),
            (self.compression_bits == 0 or self.compression_bits in BITS,
             f"compression_bits must be 0 (off) or {BITS.start}..{BITS.stop - 1}, got {self.compression_bits}"),
            # Masked values are uniform over the whole ring: a few-bit code would come back as a full word.
            (not self.secure_aggregation or self.compression_bits == 0,
             "compression_bits cannot combine with secure_aggregation: a masked value fills the masking ring "
             "whatever bits went in, so nothing would be saved; use one or the other"),
            (self.dp_epsilon > 0, f"dp_epsilon must be positive (inf: no differential privacy), got {self.dp_epsilon}"),
            (0 < self.dp_delta < 1, f"dp_delta must be in (0, 1), got {self.dp_delta}"),
            (self.dp_clip > 0 and math.isfinite(self.dp_clip), f"dp_clip must be positive and finite, got {self.dp_clip}"),
            (self.dp_level in DP_LEVELS, f"dp_level must be one of {', '.join(DP_LEVELS)}, got {self.dp_level!r}"),
            (0 < self.dp_sample_rate <= 1, f"dp_sample_rate must be in (0, 1], got {self.dp_sample_rate}"),
            (self.dp_update_clip > 0 and math.isfinite(self.dp_update_clip),
             f"dp_update_clip must be positive and finite, got {self.dp_update_clip}"),
            (self.dp_level == "node" or self.dp_sample_rate == 1,
             "dp_sample_rate samples nodes under dp_level node; record level samples rows (batch_size)"),
            # DP-FedAvg's mean is uniform over clipped updates: the dynamic weights and the guards read the
            # per-node statistics it does not release, and masking would hide the updates the server clips.
            (not self.node_differential_privacy or self.aggregation == "fedavg",
             "dp_level node runs DP-FedAvg (clipped updates, uniform weights): set aggregation fedavg"),
            (not self.node_differential_privacy or not self.secure_aggregation,
             "dp_level node clips and noises on the server (central DP): it cannot combine with secure_aggregation"),
            # Island trimming picks the rows to train on from all the node's rows: one row could change
            # which others train, which per-row clipping does not bound.
            (not self.differential_privacy or self.trim_fraction == 0,
             "trim_fraction must be 0 with dp_epsilon: choosing rows by their islands couples the rows, "
             "which per-row clipping does not bound"),
            # DP-SGD feeds the encoder (rows, views, features) so a row's views are one Opacus sample; the
            # missing-value mask is concatenated on axis 1, which that layout breaks.
            (not self.differential_privacy or not self.missing_mask, "missing_mask is not supported with dp_epsilon"),
            (self.personalisation in PERSONALISATIONS,
             f"personalisation must be one of {', '.join(PERSONALISATIONS)}"),
            (0 <= self.acceptance_margin <= 1, f"acceptance_margin must be in [0, 1] (0: off), got {self.acceptance_margin}"),
            (self.acceptance_quorum >= 1, f"acceptance_quorum must be >= 1, got {self.acceptance_quorum}"),
            # The peers' views hold references (k-means centroids of a node's embedded rows), which no ε covers.
            (self.acceptance_margin == 0 or math.isinf(self.dp_epsilon),
             "acceptance_margin releases each node's references to the others, which dp_epsilon does not cover: "
             "set one of them off"),
            (self.rounds >= 1, "rounds must be >= 1"),
            (self.seed >= 0, "seed must be >= 0"),
            (self.local_epochs >= 1, "local_epochs must be >= 1"),
            (self.local_steps >= 0, "local_steps must be >= 0 (0: no bound)"),
            (self.min_rows_per_round >= 0, "min_rows_per_round must be >= 0 (0: local_epochs for all)"),
            (self.batch_size >= 2, "batch_size must be >= 2 (InfoNCE needs negatives)"),
            (0 < self.lr < math.inf, f"lr must be positive and finite, got {self.lr}"),
            (1e-8 < self.temperature < math.inf,  # the loss's own floor
             f"temperature must be above 1e-8 and finite, got {self.temperature}"),
            (0 <= self.consistency_weight < math.inf,
             f"consistency_weight must be >= 0 and finite, got {self.consistency_weight}"),
            (self.embedding_dim >= 1 and self.hidden >= 1, "embedding_dim and hidden must be >= 1"),
            (0 <= self.mask_prob < 1, "mask_prob must be in [0, 1)"),
            (0 <= self.noise_std < math.inf, f"noise_std must be >= 0 and finite, got {self.noise_std}"),
            (self.rows_per_reference >= 1, f"rows_per_reference must be >= 1, got {self.rows_per_reference}"),
            (1 <= self.n_neighbors <= self.n_references,
             f"n_neighbors must be in [1, n_references = {self.n_references}], got {self.n_neighbors}"),
            (0 < self.fpr_target < 1, "fpr_target must be in (0, 1)"),
            (0 <= self.trim_fraction < 0.5, "trim_fraction must be in [0, 0.5)"),
            (0 < self.val_fraction < 1 and 0 <= self.test_fraction < 1
             and self.val_fraction + self.test_fraction < 1,
             "val_fraction and test_fraction must be fractions that leave rows to train on"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def differential_privacy(self) -> bool:
        """Whether local training runs DP-SGD (record level, a finite ``dp_epsilon``)."""
        return math.isfinite(self.dp_epsilon) and self.dp_level == "record"

    @property
    def node_differential_privacy(self) -> bool:
        """Whether the server runs DP-FedAvg (node level, a finite ``dp_epsilon``)."""
        return math.isfinite(self.dp_epsilon) and self.dp_level == "node"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def updated(self, **overrides: Any) -> "FedCLConfig":
        """A copy with the given fields replaced; ``None`` values mean "keep"."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def load_config(path: str | Path, base: FedCLConfig | None = None) -> FedCLConfig:
    """Read a TOML file whose top-level keys are FedCLConfig fields."""
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; give a TOML file of config keys") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (TOML is UTF-8)") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot read the config file (permission denied)") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from None
    known = {f.name: f.type for f in fields(FedCLConfig)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{path}: unknown config key(s): {', '.join(unknown)}")
    defaults = FedCLConfig()
    for key, value in values.items():
        expected = type(getattr(defaults, key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            values[key] = float(value)
        elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"{path}: {key} must be {expected.__name__}, got {value!r}")
    return (base or defaults).updated(**values)


def save_config(config: FedCLConfig, path: str | Path) -> None:
    """Write the resolved config as TOML (flat keys of str, bool, int, float)."""
    lines = []
    for key, value in config.to_dict().items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = json.dumps(value)  # a JSON string is a valid TOML basic string
        else:
            text = repr(value)
        lines.append(f"{key} = {text}")
    Path(path).write_text("\n".join(lines) + "\n")
