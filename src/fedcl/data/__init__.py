"""Data layer of fedcl: read N-BaIoT (or, with ``schema="auto"``, any numeric feature table), guard against
leakage (N-BaIoT only), scale, split.

Typical use::

    nodes = read_dataset("data/nbaiot/fedmse-iid")
    split = split_node(nodes[0])
    scaler = NodeScaler().fit(leakage_guard(split.train))
    X_train = scaler.transform(leakage_guard(split.train))
"""

from fedcl import _lazy_exports

# Names load on first use (fedcl._lazy_exports): reading a node's rows does not pull in the
# partitioners' k-means or the corruption helpers.
_EXPORTS = {
    "._corrupt": ["FEATURE_GROUPS", "contaminate", "missing_completely_at_random", "missing_feature_group",
                  "missing_row_blocks", "scaled_gaussian_noise"],
    "._errors": ["AmbiguousLayout", "DataError"],
    "._partition": ["GROUPINGS", "MIN_BENIGN", "dirichlet_partition", "home_cluster_partition",
                    "quantity_skew_partition"],
    "._preprocess": ["JITTER_LIMIT", "NodeScaler", "leakage_guard", "public_statistics", "training_scaler"],
    "._readers": ["KAGGLE_DEVICES", "LAYOUTS", "NodeData", "SCHEMAS", "detect_layout", "node_names",
                   "read_dataset", "read_feature_csv"],
    "._schema": ["COLUMNS", "JITTER_COLUMNS", "JITTER_MEAN_COLUMNS", "JITTER_VARIANCE_COLUMNS", "N_FEATURES"],
    "._splits": ["ROW_SETS", "NodeSplit", "split_node"],
}
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)

__all__ = [
    "COLUMNS",
    "N_FEATURES",
    "JITTER_COLUMNS",
    "JITTER_MEAN_COLUMNS",
    "JITTER_VARIANCE_COLUMNS",
    "JITTER_LIMIT",
    "KAGGLE_DEVICES",
    "LAYOUTS",
    "SCHEMAS",
    "AmbiguousLayout",
    "DataError",
    "NodeData",
    "NodeSplit",
    "ROW_SETS",
    "NodeScaler",
    "detect_layout",
    "node_names",
    "leakage_guard",
    "public_statistics",
    "training_scaler",
    "read_dataset",
    "read_feature_csv",
    "split_node",
    "GROUPINGS",
    "MIN_BENIGN",
    "dirichlet_partition",
    "home_cluster_partition",
    "quantity_skew_partition",
    "FEATURE_GROUPS",
    "contaminate",
    "missing_completely_at_random",
    "missing_feature_group",
    "missing_row_blocks",
    "scaled_gaussian_noise",
]
