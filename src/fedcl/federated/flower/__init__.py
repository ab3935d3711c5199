"""Flower apps for fedcl: thin adapters around the same federated functions as the in-process runner."""

from fedcl.federated.flower.inprocess import InProcessGrid, run_inprocess
from fedcl.federated.flower.server import run_server
from fedcl.federated.flower.strategy import FedCLStrategy

__all__ = ["FedCLStrategy", "InProcessGrid", "run_inprocess", "run_server"]
