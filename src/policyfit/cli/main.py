"""``policyfit`` command line: a thin layer over the public API.

Every user error prints one line, ``error: <path>: <field>: <message>``, and exits with code 2;
``--debug`` shows the traceback instead. Subcommands live in one module each (``policyfit.cli.<name>``)
and are attached here.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings

import click

from policyfit.errors import PolicyfitError, PolicyfitWarning

# Each module defines ``register(group)`` and adds its commands to the top-level group (a module may
# also extend a group registered before it, e.g. ``corrupt`` adds ``policyfit data corrupt``).
COMMAND_MODULES = (
    "data",
    "corrupt",
    "behavior",
    "train",
    "evaluate",
    "diagnose",
    "sweep",
    "offpolicy",
    "quickstart",
    "bandit",
    "bandit_learn",
    "serve",
    "export",
    "steer",
    "pref",
)


class PolicyfitGroup(click.Group):
    """Click group that turns PolicyfitError (and bad input files) into one line and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PolicyfitError as exc:
            if ctx.meta.get("policyfit.debug"):
                raise
            click.echo(f"error: {exc.one_line()}", err=True)
            ctx.exit(2)


_SHOW_LIBRARY_WARNINGS = {"on": False}


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """policyfit's own warnings always, one line each; the libraries' only under ``--debug``."""
    if issubclass(category, PolicyfitWarning):
        click.echo(f"warning: {message}", err=True)
    elif _SHOW_LIBRARY_WARNINGS["on"]:
        click.echo(f"warning ({category.__name__}, {filename}:{lineno}): {message}", err=True)


@click.group(cls=PolicyfitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--debug", is_flag=True, help="Show full tracebacks for errors, and the libraries' warnings."
)
@click.version_option(package_name="policyfit")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """policyfit: learn a decision policy from logged data.

    \b
    data in   -> policyfit data inspect / convert / make / list
    diagnose  -> policyfit data inspect --full, policyfit report
    learn     -> policyfit train ALGO --dataset NAME_OR_PATH
    evaluate  -> policyfit eval RUN_DIR
    """
    ctx.meta["policyfit.debug"] = debug
    _SHOW_LIBRARY_WARNINGS["on"] = debug
    if debug:
        warnings.simplefilter("default")  # every library warning, once per place
    warnings.showwarning = _show_warning


for _name in COMMAND_MODULES:
    _module = f"policyfit.cli.{_name}"
    if importlib.util.find_spec(_module) is not None:
        importlib.import_module(_module).register(cli)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``policyfit`` script."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="policyfit", standalone_mode=True)
    except PolicyfitError as exc:  # raised outside a command's invoke (e.g. while parsing)
        if debug:
            raise
        click.echo(f"error: {exc.one_line()}", err=True)
        sys.exit(2)
