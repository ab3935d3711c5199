"""The study's supervised rows (MLP, 1D-CNN, GNN, GAT), trained on a labelled slice of the attacks."""

from __future__ import annotations

from collections.abc import Callable

from fedcl.experiments._methods import Method

def _supervised(make: Callable[[int], object]) -> Callable:
    def fit(splits, config):
        from fedcl.baselines.supervised import fit_supervised, labelled_split

        labelled, test_splits = labelled_split(splits, seed=config.seed)
        # One model on every node's labelled rows: the study's centralised setting for these rows.
        return fit_supervised(make(config.seed), labelled, pooled=True), test_splits
    return fit


def supervised_methods() -> list[Method]:
    from fedcl.baselines.supervised import CNN1DClassifier, GATClassifier, GNNClassifier, MLPClassifier

    label = "supervised, pooled labelled rows"
    return [
        Method(f"MLP ({label})", "supervised", _supervised(lambda s: MLPClassifier(random_state=s))),
        Method(f"1D-CNN ({label})", "supervised", _supervised(lambda s: CNN1DClassifier(random_state=s))),
        Method(f"GNN ({label})", "supervised", _supervised(lambda s: GNNClassifier(random_state=s))),
        Method(f"GAT ({label})", "supervised", _supervised(lambda s: GATClassifier(random_state=s))),
    ]
