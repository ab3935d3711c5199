"""Flower ServerApp: reads the run settings once and hands over to :func:`run_server`.

Run settings (``[tool.flwr.app.config]`` or ``flwr run -c``): any FedCLConfig field by its name
(``rounds``, ``temperature``, ``consistency_weight``, ...), plus ``out-dir`` (where the server writes
the checkpoint, history and model), ``min-nodes`` (a count, or below 1 a share of the fleet),
``sample-fraction``, ``round-timeout``, ``timeout-multiple``, ``timeout-floor``, ``resume`` and
``evaluate`` (the nodes evaluate the final model on their held-out rows; default true):
:func:`.server.run_server` says what each does. The node
registry, when the SuperLink has one, comes from the environment (:func:`.registry.enrolled_grid`).
"""

from __future__ import annotations

from dataclasses import fields

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedcl.config import FedCLConfig
from fedcl.errors import InputError
from fedcl.federated.flower.registry import enrolled_grid
from fedcl.federated.flower.run_dir import REFUSED
from fedcl.federated.flower.server import run_server

app = ServerApp()


def config_from_run_config(run_config: dict) -> FedCLConfig:
    names = {f.name for f in fields(FedCLConfig)}
    defaults = FedCLConfig()
    values = {k: type(getattr(defaults, k))(v) for k, v in run_config.items() if k in names}
    return defaults.updated(**values)


@app.main()
def main(grid: Grid, context: Context) -> None:
    settings = context.run_config
    try:
        # Under `fedcl flower superlink --registry`, only enrolled nodes take part, under their enrolled names.
        run_server(enrolled_grid(grid), config_from_run_config(settings), str(settings.get("out-dir", "runs/flower")),
                   min_nodes=float(settings.get("min-nodes", 2)),
                   round_timeout=float(settings.get("round-timeout", 600)), resume=bool(settings.get("resume", False)),
                   evaluate=bool(settings.get("evaluate", True)),
                   sample_fraction=float(settings.get("sample-fraction", 1.0)),
                   timeout_multiple=float(settings.get("timeout-multiple", 3.0)),
                   timeout_floor=float(settings.get("timeout-floor", 60.0)))
    except InputError as err:
        # Flower puts str(err) in the run's status details: the marker tells `fedcl flower run` it was the settings.
        raise InputError(f"{REFUSED}{err}") from None
