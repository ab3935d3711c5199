"""Supervised baselines (the paper's MLP, 1D-CNN, GNN and GAT rows), in fedcl's harness.

They learn from attack labels, which fedcl's detectors never see, so they get their own labelled
rows: :func:`labelled_split` moves a seeded share of each node's attack rows into a labelled
training (and validation) set and out of the test rows. Their results are to be reported as
supervised, next to the unsupervised rows, on the same benign test rows::

    splits = load_splits(FedCLConfig(data="..."))      # leakage guard on
    scores = evaluate_supervised(MLPClassifier(), splits)
    summarise(scores)["pooled"]
"""

from ._cnn1d import CNN1DClassifier
from ._gat import GATClassifier
from ._gcn import GNNClassifier
from ._graph import statistic_graph
from ._layout import STATISTICS, STREAMS, WINDOW_INDEX, WINDOWS, to_windows
from ._mlp import MLPClassifier
from ._run import evaluate_supervised, fit_supervised
from ._split import LabelledData, LabelledNode, labelled_split

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
