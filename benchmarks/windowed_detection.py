"""Per-packet versus windowed (majority vote over w packets) detection on capture-ordered data.

    .venv/bin/python benchmarks/windowed_detection.py --data PATH [--rounds N]

Trains fedcl on PATH (UCI layout, rows in capture order), then for every node prints the FPR on its
held-out benign test rows and the TPR on each attack file, per packet and with the node's vote
window w (chosen on its benign validation rows at training). Each file is voted on separately, as
each is its own capture.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np

from fedcl.config import FedCLConfig
from fedcl.model import majority_vote
from fedcl.pipeline import load_detectors, load_splits, load_windows, train


def rates(flags: np.ndarray, w: int) -> tuple[float, float]:
    return float(flags.mean()), float(majority_vote(flags, w).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    config = FedCLConfig(data=args.data, layout="uci", rounds=args.rounds)
    splits = load_splits(config)
    with tempfile.TemporaryDirectory() as tmp:
        train(config, tmp, splits=splits)
        detectors, windows = load_detectors(tmp), load_windows(tmp)
    print(f"{'node':42s} {'rows':>8s} {'w':>3s} {'per packet':>11s} {'windowed':>9s}")
    for s in splits:
        det, w = detectors[s.name], windows[s.name]
        fpr = rates(det.predict(s.test_benign), w)
        print(f"{s.name:42s} {len(s.test_benign):8,d} {w:3d}  FPR {fpr[0]:6.4f}   {fpr[1]:6.4f}   benign test")
        for family in dict.fromkeys(s.attack_family):  # file order
            tpr = rates(det.predict(s.attack[s.attack_family == family]), w)
            print(f"{'':42s} {int((s.attack_family == family).sum()):8,d} {w:3d}  TPR {tpr[0]:6.4f}   {tpr[1]:6.4f}   {family}")


if __name__ == "__main__":
    main()
