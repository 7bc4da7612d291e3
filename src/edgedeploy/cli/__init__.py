"""The command line: thin wrappers that parse, call one library function and print.

:func:`main` applies the exit-code contract (:mod:`edgedeploy.cli.contract`) to every command:
usage mistakes and :class:`~edgedeploy.errors.UserError` print one line and exit 2, a negative
verdict exits 1, and anything else is a bug: one line naming the log that holds the traceback,
exit 3. No traceback reaches the terminal.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

import typer

from edgedeploy import __version__
from edgedeploy.cli import bench as bench_cmd
from edgedeploy.cli import card as card_cmds
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
from edgedeploy.cli import contract
from edgedeploy.cli import output
from edgedeploy.errors import EXIT_INTERNAL, EXIT_USAGE, EdgeDeployError, UserError, VerdictError

app = typer.Typer(
    name="edgedeploy",
    help="Put trained models onto edge devices: inspect, run on any engine, compare, measure.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    epilog=contract.EPILOG,
)
app.add_typer(zoo_cmds.app, name="zoo")
app.add_typer(card_cmds.app, name="card")
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


def _terminate(signum, frame):
    # SIGTERM as an exception: `finally` blocks run, so temporary files and scratch directories go
    raise SystemExit(128 + signum)


def _start():
    """SIGTERM cleans up like Ctrl-C; scratch directories a killed run left are swept. The previous handler."""
    import threading

    from edgedeploy import fsio

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        for path in fsio.sweep_stale():
            logging.getLogger(__name__).info("removed %s, left by an edgedeploy process that was killed", path)
    except Exception:  # never let housekeeping stop a command
        logging.getLogger(__name__).debug("sweeping stale scratch directories failed", exc_info=True)
    return previous


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit code by the contract (0 done, 1 negative, 2 bad input, 3 bug)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    previous = _start()
    try:
        return _run(list(sys.argv[1:] if argv is None else argv))
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args: list[str]) -> int:
    as_json = "--json" in args
    code, message = 0, None
    with contract.json_stdout(as_json) as channel:
        try:
            # With standalone_mode=False click returns the code of a typer.Exit instead of raising it.
            code = app(args=args, standalone_mode=False, prog_name="edgedeploy") or 0
        except contract.NoArgsIsHelpError as exc:  # a bare group: its help, exit 2 as click does
            exc.show()
            return exc.exit_code
        except contract.UsageError as exc:
            code, message = EXIT_USAGE, contract.usage_line(exc, typer.main.get_command(app), args)
        except typer.TyperException as exc:  # click's other errors (an unreadable file argument)
            code, message = EXIT_USAGE, f"edgedeploy: error: {contract.one_line(exc.format_message())}"
        except VerdictError as exc:
            code, message = exc.exit_code, f"edgedeploy: {contract.one_line(exc)}"
        except EdgeDeployError as exc:
            code = exc.exit_code
            if code >= EXIT_INTERNAL:  # InternalError: a bug or an engine crash, reported like any other
                message = contract.internal_error_line(exc, args)
            else:
                prefix = "edgedeploy: error:" if isinstance(exc, UserError) and code == EXIT_USAGE else "edgedeploy:"
                message = f"{prefix} {contract.one_line(exc)}"
        except typer.Exit as exc:
            code = exc.exit_code
        except (typer.Abort, KeyboardInterrupt):
            code, message = 130, "edgedeploy: aborted"
        except BrokenPipeError:  # `edgedeploy ... | head`: the reader left, nothing to say
            return 0
        except Exception as exc:
            code, message = EXIT_INTERNAL, contract.internal_error_line(exc, args)
        if message and as_json and not channel.emitted:
            output.emit_json(contract.error_document(code, message.removeprefix("edgedeploy: ").removeprefix("error: ")))
    if message:
        print(message, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
