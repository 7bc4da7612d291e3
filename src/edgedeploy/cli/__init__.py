"""The command line: thin wrappers that parse, call one library function and print.

User mistakes (:class:`~edgedeploy.errors.UserError`) print one line and exit non-zero; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from edgedeploy import __version__
from edgedeploy.cli import bench as bench_cmd
from edgedeploy.cli import demo as demo_cmd
from edgedeploy.cli import deploy as deploy_cmds
from edgedeploy.cli import eval as eval_cmd
from edgedeploy.cli import fleet as fleet_cmds
from edgedeploy.cli import keys as keys_cmds
from edgedeploy.cli import model as model_cmds
from edgedeploy.cli import optimize as optimize_cmd
from edgedeploy.cli import pipeline as pipeline_cmd
from edgedeploy.cli import serve as serve_cmds
from edgedeploy.cli import zoo as zoo_cmds
from edgedeploy.errors import UserError

app = typer.Typer(
    name="edgedeploy",
    help="Put trained models onto edge devices: inspect, run on any engine, compare, measure.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(zoo_cmds.app, name="zoo")
app.command("info")(model_cmds.info)
app.command("run")(model_cmds.run)
app.command("engines")(model_cmds.engines_)
app.command("demo")(demo_cmd.demo)
app.command("eval")(eval_cmd.eval_)
app.command("bench")(bench_cmd.bench)
app.command("optimize")(optimize_cmd.optimize)
app.command("deploy")(deploy_cmds.deploy)
app.command("devices")(deploy_cmds.devices)
app.command("estimate")(deploy_cmds.estimate)
app.command("doctor")(deploy_cmds.doctor)
app.add_typer(deploy_cmds.deployment_app, name="deployment")
app.command("serve")(serve_cmds.serve)
app.command("pipeline")(pipeline_cmd.pipeline)
app.command("gate-video")(pipeline_cmd.gate_video)
app.add_typer(serve_cmds.ab_app, name="ab")
app.command("agent")(fleet_cmds.agent)
app.add_typer(fleet_cmds.fleet_app, name="fleet")
app.add_typer(keys_cmds.app, name="keys")


def _version(value: bool):
    if value:
        print(f"edgedeploy {__version__}")
        raise typer.Exit()


@app.callback()
def _root(log_level: str = typer.Option("warning", "--log-level", help="debug, info, warning or error."),
          version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version.")):
    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        raise UserError(f"--log-level {log_level!r}: expected debug, info, warning or error")
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        # With standalone_mode=False click returns the code of a typer.Exit instead of raising it.
        return app(args=argv, standalone_mode=False) or 0
    except UserError as exc:
        print(f"edgedeploy: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("edgedeploy: aborted", file=sys.stderr)
        return 130
    except Exception as exc:  # click's usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise


if __name__ == "__main__":
    sys.exit(main())
