"""The `fedcl` command: joins the command groups, one module each."""

from __future__ import annotations

import sys

import click

from fedcl.cli.detect import detect_command, export_command
from fedcl.cli.errors import bad_input_exits_2, command_group, fail
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


def main() -> None:
    """The installed `fedcl`: as ``app()``, but a mistyped command line (unknown or missing option, bad value)
    is one line on stderr and exit 2, as every other bad input, not typer's boxed usage."""
    try:
        code = app(standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError:  # the help is already printed
        code = 2
    except click.UsageError as e:
        hint = f" Try '{e.ctx.command_path} --help' for help." if e.ctx is not None else ""
        code = fail(f"{e.format_message()}{hint}").exit_code
    except click.ClickException as e:
        e.show()
        code = e.exit_code
    except click.Abort:
        click.echo("Aborted.", err=True)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
