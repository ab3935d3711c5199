"""What a few bits per parameter on the wire cost in detection: fedcl with and without compression, same splits.

    .venv/bin/python benchmarks/compression.py [--data PATH ...] [--cell NAME ...] [--seeds 1,2] [--bits 4]
        [--out runs/compression]

For each benchmark cell (default: fedmse-iid natural, home clusters, Dirichlet α = 0.5 and 0.1, and the
simulated network) and seed, trains fedcl with θ in float32 and with ``--bits`` bits per parameter
each way (``compression_bits``: block-wise quantisation with error feedback), both as the default
detector and with personalisation off (the federation's encoder alone: only it crosses the wire), on
the same splits. Rows are appended to ``OUT/results.csv`` as they finish, so a rerun resumes. Prints
pooled AUROC and FPR@TPR0.99 per cell and their mean differences; the bytes on the wire come from
``benchmarks/flower_overhead.py``. Report seeds by default (1, 2; seed 0 is the development seed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from fedcl.config import FedCLConfig
from fedcl.experiments._benchmark import cell_splits, cells, run_cell
from fedcl.experiments._methods import Method, fedcl_method
from fedcl.experiments._privacy import shared_and_personal
from fedcl.experiments._runner import one_torch_thread

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "nbaiot" / "fedmse-iid"
SIMULATED = Path.home() / ".cache" / "fedcl" / "simulated-seed0"
DEFAULT_CELLS = ["natural", "home clusters", "Dirichlet α=0.5", "Dirichlet α=0.1"]


VIEWS = shared_and_personal(FedCLConfig())  # label -> personalisation; the default detector's last
DEFAULT_VIEW = list(VIEWS)[-1]


def methods(bits: int) -> list[Method]:
    return [Method(f"{view}, {label}", "ablation", fedcl_method(personalisation=mode, compression_bits=b))
            for view, mode in VIEWS.items() for label, b in (("float32", 0), (f"{bits}-bit", bits))]


@one_torch_thread()  # small models over many runs: steadier on one thread each
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", help=f"data folders (default: {SHARED} and {SIMULATED})")
    parser.add_argument("--cell", action="append", help="cells to run (default: natural, home clusters, Dirichlet)")
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("runs/compression"))
    args = parser.parse_args()
    datas = args.data or [str(SHARED), str(SIMULATED)]
    wanted = args.cell or DEFAULT_CELLS
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.csv"
    done = set()
    if results.is_file():
        done = set(map(tuple, pd.read_csv(results, usecols=["data", "cell", "method", "seed"]).astype(str).to_numpy()))
    for data in datas:
        for cell in (c for c in cells(data, quick=False) if c.name in wanted):
            for seed in (int(s) for s in args.seeds.split(",")):
                config = FedCLConfig(data=data, seed=seed)
                todo = [m for m in methods(args.bits) if (data, cell.name, m.name, str(seed)) not in done]
                splits = cell_splits(cell, config, quick=False) if todo else []
                for method in todo:
                    row = run_cell(cell, method, config, splits)
                    pd.DataFrame([row]).to_csv(results, mode="a", header=not results.is_file(), index=False)
                    print(f"{Path(data).name} | {cell.name} | seed {seed} | {method.name}: "
                          f"AUROC {row['auroc']:.4f}, FPR@TPR0.99 {row['fpr_at_tpr99']:.4f}", flush=True)
    report(pd.read_csv(results), args.bits)


def report(rows: pd.DataFrame, bits: int) -> None:
    rows = rows.assign(data=rows["data"].map(lambda d: Path(d).name))
    wide = rows.pivot_table(index=["data", "cell", "seed"], columns="method", values=["auroc", "fpr_at_tpr99"])
    means = wide.groupby(["data", "cell"], sort=False).mean()
    print(f"{'':34} AUROC float32 -> {bits}-bit      FPR@TPR0.99 float32 -> {bits}-bit   (means over seeds)")
    for view in VIEWS:
        print(view)
        for (data, cell), m in means.iterrows():
            a, b = m["auroc"][f"{view}, float32"], m["auroc"][f"{view}, {bits}-bit"]
            f, g = m["fpr_at_tpr99"][f"{view}, float32"], m["fpr_at_tpr99"][f"{view}, {bits}-bit"]
            print(f"  {data + ' | ' + cell:32} {a:.4f} -> {b:.4f} ({b - a:+.4f})   {f:.4f} -> {g:.4f} ({g - f:+.4f})")
    lost = wide["auroc"][f"{DEFAULT_VIEW}, float32"] - wide["auroc"][f"{DEFAULT_VIEW}, {bits}-bit"]
    print(f"{bits}-bit updates: AUROC lost {lost.mean():+.4f} on average, {lost.max():+.4f} at most "
          f"(default detector, {len(lost)} cell-seeds)")


if __name__ == "__main__":
    main()
