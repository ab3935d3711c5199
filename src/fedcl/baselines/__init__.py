"""Baseline detectors run in the same harness as fedcl."""

from fedcl.baselines._knn import KNNDetector

__all__ = ["KNNDetector"]
