"""Supervised baselines (the paper's MLP, 1D-CNN, GNN and GAT rows), in fedcl's harness.

They learn from attack labels, which fedcl's detectors never see, so they get their own labelled
rows: :func:`labelled_split` moves a seeded share of each node's attack rows into a labelled
training (and validation) set and out of the test rows. Their results are to be reported as
supervised, next to the unsupervised rows, on the same benign test rows::

    splits = load_splits(FedCLConfig(data="..."))      # leakage guard on
    scores = evaluate_supervised(MLPClassifier(), splits)
    summarise(scores)["pooled"]
"""

from fedcl import _lazy_exports

# Names load on first use (fedcl._lazy_exports).
_EXPORTS = {
    "._cnn1d": ["CNN1DClassifier"],
    "._gat": ["GATClassifier"],
    "._gcn": ["GNNClassifier"],
    "._graph": ["statistic_graph"],
    "._layout": ["STATISTICS", "STREAMS", "WINDOW_INDEX", "WINDOWS", "to_windows"],
    "._mlp": ["MLPClassifier"],
    "._run": ["evaluate_supervised", "fit_supervised"],
    "._split": ["LabelledData", "LabelledNode", "labelled_split"],
}
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)

__all__ = [
    "CNN1DClassifier",
    "GATClassifier",
    "GNNClassifier",
    "LabelledData",
    "LabelledNode",
    "MLPClassifier",
    "STATISTICS",
    "STREAMS",
    "WINDOWS",
    "WINDOW_INDEX",
    "evaluate_supervised",
    "fit_supervised",
    "labelled_split",
    "statistic_graph",
    "to_windows",
]
