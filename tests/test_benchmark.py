"""`fedcl experiment benchmark`: every cell and method, resumable, with the no-regret table."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from fedcl.cli import app
from fedcl.config import FedCLConfig
from fedcl.data import read_dataset
from fedcl.experiments._benchmark import (ACCEPTING, CURVE_COLUMNS, OURS, SHARED_ONLY, TPR_GRID, WEIGHTED, Cell,
                                          behind_curves, benchmark, benchmark_methods, cells, federation_benign_fpr,
                                          foreign_cells, named_cells, no_regret, write_benchmark_report)
from fedcl.experiments._methods import Method, per_node_method
from fedcl.baselines import KNNDetector

runner = CliRunner()


def test_quick_benchmark_runs_every_cell_and_method_and_reports(fedmse_slice, tmp_path):
    # Execute
    result = runner.invoke(app, ["experiment", "benchmark", "--data", str(fedmse_slice), "--out", str(tmp_path),
                                 "--seeds", "1", "--quick"])

    # Assert
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(tmp_path / "results.csv")
    names = [c.name for c in cells(str(fedmse_slice), quick=True)]
    assert list(pd.unique(rows["cell"])) == names
    assert len(rows) == len(names) * len(benchmark_methods())
    assert "centralised" not in " ".join(rows["method"])  # only methods that keep rows on their node
    assert rows["federation_benign_fpr"].between(0, 1).all() and rows["auroc"].between(0, 1).all()
    report = (tmp_path / "benchmark.md").read_text()
    assert "## No regret" in report and "natural, unseen device" in report and "## No regret of fedcl with two views" in report
    assert (tmp_path / "benchmark.png").stat().st_size > 10_000
    assert (tmp_path / "no-regret.png").stat().st_size > 10_000 and "![no regret](no-regret.png)" in report
    # every run's ROC tail, kept beside its row: FPR grows with TPR and meets the row's FPR@TPR0.99
    curves = pd.read_csv(tmp_path / "curves.csv")
    assert curves[["cell", "method"]].equals(rows[["cell", "method"]])
    fprs = curves[CURVE_COLUMNS].to_numpy()
    assert (np.diff(fprs, axis=1) >= 0).all()
    np.testing.assert_allclose(curves["0.99"], rows["fpr_at_tpr99"])


def test_an_interrupted_benchmark_resumes_where_it_stopped(fedmse_slice, tmp_path):
    # Prepare: a cheap method, and a results file that lost its last row
    knn = Method("k-NN per node", "unsupervised", per_node_method(lambda c: KNNDetector()))
    config = FedCLConfig()
    benchmark(config, [str(fedmse_slice)], [0], True, tmp_path, progress=lambda _: None, methods=[knn])
    full = pd.read_csv(tmp_path / "results.csv")
    full.iloc[:-1].to_csv(tmp_path / "results.csv", index=False)
    ran = []

    # Execute
    benchmark(config, [str(fedmse_slice)], [0], True, tmp_path, progress=ran.append, methods=[knn])

    # Assert: only the missing row ran again, with the same figures; its curve, written before the row, twice
    again = pd.read_csv(tmp_path / "results.csv")
    assert len(ran) == 1 and len(again) == len(full)
    np.testing.assert_allclose(again["auroc"], full["auroc"])
    curves = pd.read_csv(tmp_path / "curves.csv")
    assert len(curves) == len(full) + 1 and curves.iloc[-1].equals(curves.iloc[-2])


def test_seeds_run_as_listed_and_a_bad_list_exits_2(fedmse_slice, tmp_path):
    args = ["experiment", "benchmark", "--data", str(fedmse_slice), "--out", str(tmp_path), "--quick", "--cell",
            "natural", "--method", "k-NN per node", "--seeds"]

    listed = runner.invoke(app, [*args, "2,1"])
    refused = {seeds: runner.invoke(app, [*args, seeds]) for seeds in ("1,1", "0", "-1", "", "a", "1,x")}

    assert listed.exit_code == 0, listed.output
    assert list(pd.read_csv(tmp_path / "results.csv")["seed"]) == [2, 1]  # the report seeds, without seed 0
    for seeds, result in refused.items():
        assert result.exit_code == 2 and "--seeds" in result.output and "Traceback" not in result.output, seeds


def test_only_the_cells_asked_for_run(fedmse_slice, tmp_path):
    knn = Method("k-NN per node", "unsupervised", per_node_method(lambda c: KNNDetector()))

    benchmark(FedCLConfig(), [str(fedmse_slice)], [0], True, tmp_path, progress=lambda _: None, methods=[knn],
              only=["natural", "home clusters"])

    assert list(pd.read_csv(tmp_path / "results.csv")["cell"]) == ["natural", "home clusters"]


def test_only_the_methods_asked_for_run_and_an_unknown_one_exits_2(fedmse_slice, tmp_path):
    # Execute: one cheap method of one cell; then a name the benchmark has not
    args = ["experiment", "benchmark", "--data", str(fedmse_slice), "--out", str(tmp_path), "--seeds", "1",
            "--quick", "--cell", "natural"]
    ran = runner.invoke(app, [*args, "--method", "k-NN per node"])
    unknown = runner.invoke(app, [*args, "--method", "k-NN"])

    # Assert
    assert ran.exit_code == 0, ran.output
    assert list(pd.read_csv(tmp_path / "results.csv")["method"]) == ["k-NN per node"]
    assert unknown.exit_code == 2 and "no method named k-NN; methods: fedcl (ours)" in unknown.output
    assert "Traceback" not in unknown.output


def test_home_cluster_cell_gives_nodes_different_mixes_and_small_cells_cut_training_rows(fedmse_slice):
    cell_names = {c.name: c for c in cells(str(fedmse_slice), quick=True)}
    config = FedCLConfig(seed=0)

    natural = cell_names["natural"].make_splits(config)
    small = cell_names["natural, 250 train rows"].make_splits(config)

    assert [len(s.train) for s in small] == [250] * 3
    assert [len(s.val) for s in small] == [len(s.val) for s in natural]  # validation and test rows unchanged
    # rows cut from the node's own training rows, not drawn elsewhere
    for s, n in zip(small, natural):
        assert {r.tobytes() for r in np.nan_to_num(s.train)} <= {r.tobytes() for r in np.nan_to_num(n.train)}
    assert Cell(str(fedmse_slice), "x").make_splits(config)[0].name == read_dataset(fedmse_slice)[0].name


def test_federation_benign_fpr_counts_other_nodes_rows_at_each_threshold():
    # Prepare: two nodes; a detector that flags every row above 0
    class Above:
        def __init__(self, cut):
            self.cut = cut

        def predict(self, x):
            return (x[:, 0] > self.cut).astype(int)

    from fedcl.data import NodeSplit

    def split(name, values):
        x = np.array(values, dtype=float)[:, None]
        return NodeSplit(name, x, x, x, x[:0], np.array([], dtype=object))

    splits = [split("a", [0.0, 1.0]), split("b", [2.0, 3.0, 4.0])]

    # Execute: a flags b's rows above 2.5 (2 of 3); b flags a's rows above 10 (0 of 2)
    fpr = federation_benign_fpr({"a": Above(2.5), "b": Above(10.0)}, splits)

    # Assert
    assert fpr == 2 / 5


def test_no_regret_needs_both_auroc_and_fpr_at_least_as_good():
    rows = pd.DataFrame([
        {"data": "d", "cell": "c1", "method": "fedcl (ours)", "seed": 1, "auroc": 0.99, "fpr_at_tpr99": 0.05},
        {"data": "d", "cell": "c1", "method": "LOF", "seed": 1, "auroc": 0.98, "fpr_at_tpr99": 0.04},
        {"data": "d", "cell": "c2", "method": "fedcl (ours)", "seed": 1, "auroc": 0.99, "fpr_at_tpr99": 0.01},
        {"data": "d", "cell": "c2", "method": "LOF", "seed": 1, "auroc": 0.98, "fpr_at_tpr99": 0.04},
        # fedcl without personalisation, or accepting the federation's benign, is a variant of ours, not a baseline
        {"data": "d", "cell": "c2", "method": SHARED_ONLY, "seed": 1, "auroc": 0.999, "fpr_at_tpr99": 0.001},
        {"data": "d", "cell": "c2", "method": ACCEPTING, "seed": 1, "auroc": 0.999, "fpr_at_tpr99": 0.001},
        {"data": "d", "cell": "c1", "method": WEIGHTED, "seed": 1, "auroc": 0.985, "fpr_at_tpr99": 0.03},
    ])

    table = no_regret(rows).set_index("cell")
    two_views = no_regret(rows, ours=WEIGHTED).set_index("cell")  # the default is not a baseline of a variant either

    assert not table.loc["c1", "no regret"] and table.loc["c2", "no regret"]
    assert table.loc["c1", "auroc by"] == "LOF"
    assert list(two_views.index) == ["c1"] and two_views.loc["c1", "best baseline auroc"] == 0.98


def test_behind_curves_show_fedcl_and_the_baselines_ahead_where_it_is_behind():
    # Prepare: in c1 fedcl is behind LOF on AUROC and k-NN on FPR; c2 ahead; c3 behind, one run without a curve.
    # Rows of seeds 1 and 2; curves of those, of a seed not shown, and one curve written twice (a run cut after it)
    figures = {"c1": [(OURS, 0.99, 0.05), ("LOF", 0.995, 0.06), ("k-NN", 0.98, 0.04), ("IF", 0.9, 0.5)],
               "c2": [(OURS, 0.99, 0.01), ("LOF", 0.98, 0.04)], "c3": [(OURS, 0.99, 0.05), ("LOF", 0.995, 0.06)]}
    rows = pd.DataFrame([{"data": "/x/d", "cell": c, "method": m, "seed": seed, "auroc": a, "fpr_at_tpr99": f}
                         for c, runs in figures.items() for m, a, f in runs for seed in (1, 2)])
    curves = pd.DataFrame([{"data": "/x/d", "cell": c, "method": m, "seed": seed, **dict.fromkeys(CURVE_COLUMNS, f)}
                           for c, runs in figures.items() for m, _, _ in runs
                           for seed, f in [(1, 0.1), (2, 0.3), (0, 0.9)]
                           if (c, m, seed) != ("c3", "LOF", 2)])
    earlier = curves.assign(**dict.fromkeys(CURVE_COLUMNS, 0.7)).iloc[:1]  # the same run's curve, written before
    curves = pd.concat([earlier, curves])

    # Execute
    tails, missing = behind_curves(no_regret(rows), curves, rows)

    # Assert: c1 alone, fedcl and the two baselines ahead, each the mean of its shown seeds' last curves; c3 named
    assert set(tails["panel"]) == {"d: c1"} and missing == ["d: c3"]
    assert list(pd.unique(tails["method"])) == [OURS, "LOF", "k-NN"]
    ours = tails[tails["method"] == OURS]
    np.testing.assert_allclose(ours["tpr"], TPR_GRID)
    np.testing.assert_allclose(ours["fpr"], 0.2)


def test_the_report_draws_the_curves_of_the_cells_behind_and_names_those_without(tmp_path):
    # Prepare: fedcl behind LOF in c1 (with curves) and in c2 (rows from before runs kept curves), ahead in c3
    figures = {"c1": (0.99, 0.05, 0.995, 0.04), "c2": (0.99, 0.05, 0.995, 0.04), "c3": (0.999, 0.01, 0.99, 0.05)}
    rows = pd.DataFrame([{"data": "/x/d", "cell": c, "method": m, "seed": 1, "auroc": a, "fpr_at_tpr99": f,
                          "worst_node_auroc": a, "own_benign_fpr": 0.01, "federation_benign_fpr": 0.02}
                         for c, (a, f, la, lf) in figures.items() for m, a, f in [(OURS, a, f), ("LOF", la, lf)]])
    rows.to_csv(tmp_path / "results.csv", index=False)
    curves = rows[rows["cell"] != "c2"][["data", "cell", "method", "seed"]]
    curves.assign(**{str(t): t / 10 for t in TPR_GRID}).to_csv(tmp_path / "curves.csv", index=False)

    # Execute
    report = write_benchmark_report(tmp_path, FedCLConfig(), quick=False).read_text()

    # Assert: the no-regret chart always; the curves of c1, and c2 named as behind without them
    assert "![no regret](no-regret.png)" in report and "![behind](behind.png)" in report
    assert "without the curves of every run (made before runs kept them): d: c2." in report
    assert (tmp_path / "no-regret.png").stat().st_size > 10_000 and (tmp_path / "behind.png").stat().st_size > 10_000
    # without any curve: no curves drawn, and none left from the report before
    (tmp_path / "curves.csv").unlink()
    assert "behind.png" not in write_benchmark_report(tmp_path, FedCLConfig(), quick=False).read_text()
    assert not (tmp_path / "behind.png").exists()


def test_a_node_from_another_network_joins_each_folder(fedmse_slice, tmp_path):
    # Prepare: a second network of two nodes
    other = tmp_path / "other-net"
    for source, name in (("Client-2", "Site-A"), ("Client-3", "Site-B")):
        shutil.copytree(fedmse_slice / source, other / name)
    datas = [str(fedmse_slice), str(other)]
    knn = Method("k-NN per node", "unsupervised", per_node_method(lambda c: KNNDetector()))

    # Execute
    joined = named_cells(datas, True, ["natural, a node from other-net"])[0]
    names = {seed: [s.name for s in joined.make_splits(FedCLConfig(seed=seed))] for seed in (0, 1)}
    benchmark(FedCLConfig(), datas, [0], True, tmp_path, progress=lambda _: None, methods=[knn],
              only=["natural, a node from other-net"])

    # Assert: the folder's nodes and one of the other's, picked by the seed; both directions are cells
    assert names[0] == ["Client-1", "Client-2", "Client-3", "other-net/Site-A"]
    assert names[1][-1] == "other-net/Site-B"
    assert {c.name for c in foreign_cells(datas)} == {"natural, a node from other-net",
                                                       f"natural, a node from {fedmse_slice.name}"}
    rows = pd.read_csv(tmp_path / "results.csv")
    assert len(rows) == 1 and rows["nodes"].item() == 3  # --quick: two of the folder's nodes and the joining one
