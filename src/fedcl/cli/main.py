"""The `fedcl` command: joins the command groups, one module each."""

from __future__ import annotations

from fedcl.cli.detect import detect_command, export_command
from fedcl.cli.errors import bad_input_exits_2, command_group
from fedcl.cli.experiment import experiment_app
from fedcl.cli.flower import flower_app
from fedcl.cli.traffic import data_app, features_command
from fedcl.cli.training import evaluate_command, run_command, train_command

app = command_group("Federated contrastive anomaly detection on IoT network traffic.")
app.command("run")(run_command)
app.command("train")(train_command)
app.command("evaluate")(evaluate_command)
app.command("detect")(detect_command)
app.command("export")(export_command)
app.command("features")(bad_input_exits_2(features_command))
app.add_typer(data_app, name="data")
app.add_typer(experiment_app, name="experiment")
app.add_typer(flower_app, name="flower")

if __name__ == "__main__":  # pragma: no cover
    app()
