"""The ``rt-eeg2fmri`` command line: a group with one module per subcommand in ``apps.commands``.

Each subcommand module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``; heavy imports (torch, Qt, MNE) live inside ``run`` so that
``--help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand name → module under apps.commands, in the order ``--help`` lists them.
COMMANDS = {
    "demo": "demo",
    "simulate": "simulate",
    "info": "info",
    "correct": "correct",
    "train": "train",
    "evaluate": "evaluate",
    "calibrate": "calibrate",
    "report": "report",
    "replay": "replay",
    "streams": "streams",
    "stream": "stream",
    "view": "view",
}


#: The library's parameters as the command line spells them: errors raised by the library
#: name parameters, and :func:`main` rewrites them with this one table.
PARAMETER_FLAGS = {
    "pass allow_missing=True": "pass --allow-missing",
    "pass assume_order=True": "pass --assume-order",
    "assume_order=True needs": "--assume-order needs",
    "'units' must name a unit": "'--units' must name a unit",
    "pass resample=True to resample it online": "drop --no-resample to resample it online",
    "'trigger' (the marker stream NAME[:MARKER], or eeg:CHANNEL[:LEVEL|:mask=BITS]) is needed "
    "for sync='trigger'": (
        "'--sync trigger' needs '--trigger NAME[:MARKER]' (the marker stream) or "
        "'--trigger eeg:CHANNEL[:LEVEL|:mask=BITS]' (a trigger channel of the EEG stream)"
    ),
    "volume markers: 'trigger' (the": "volume markers: '--trigger' (the",
    "'trigger' eeg:CHANNEL": "'--trigger' eeg:CHANNEL",
    "'marker' eeg:CHANNEL": "'--marker' eeg:CHANNEL",
    "'calibrate'": "'--calibrate'",
    "'max_volumes'": "'--max-volumes'",
    "'minutes'": "'--minutes'",
    "or pass overwrite=True to replace them": "or pass --overwrite to replace them",
    "'adapt_minutes' is needed with 'adapt' (the truth stream)": (
        "'--adapt-minutes' is needed with '--adapt TRUTH_STREAM'"
    ),
    "'adapt_minutes'": "'--adapt-minutes'",
    "'adapt_gap'": "'--adapt-gap'",
    "'save_adapted' needs 'adapt' (the truth stream to adapt to)": (
        "'--save-adapted' needs '--adapt TRUTH_STREAM'"
    ),
    "'adapt_delays' needs 'adapt' (the truth stream to adapt to)": (
        "'--adapt-delays' needs '--adapt TRUTH_STREAM'"
    ),
    "'adapt_delays'": "'--adapt-delays'",
    "'delays'": "'--delays'",
}


def flag_message(message: str) -> str:
    """``message`` with the library's parameters replaced by the command's flags."""
    for param, flag in PARAMETER_FLAGS.items():
        message = message.replace(param, flag)
    return message


def _available() -> dict:
    mods = {}
    for name, module in COMMANDS.items():
        try:
            mods[name] = importlib.import_module(f"apps.commands.{module}")
        except ModuleNotFoundError as err:
            if err.name != f"apps.commands.{module}":
                raise
    return mods


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every available subcommand."""
    from rt_eeg2fmri import __version__

    parser = argparse.ArgumentParser(
        prog="rt-eeg2fmri",
        description="Real-time EEG-to-fMRI synthesis over Lab Streaming Layer.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR (default: INFO)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in _available().items():
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            help="debug messages, and liblsl's own log lines (quiet otherwise)",
        )
        p.set_defaults(_run=mod.run)
    return parser


#: liblsl's configuration that keeps its log to warnings and errors (its INFO lines,
#: "Loaded default config" on every process, drown a command's own output).
LSL_QUIET_CONFIG = "[log]\nlevel = -2\n"


def quiet_liblsl() -> None:
    """Point liblsl at a quiet configuration unless the user set ``LSLAPICFG`` already.

    Set in the environment before liblsl reads its configuration, so the processes a
    command starts (a replay, a benchmark's outlets) inherit it.
    """
    import os

    if os.environ.get("LSLAPICFG"):
        return
    from rt_eeg2fmri.grid import cache_dir

    path = cache_dir() / "lsl_api_quiet.cfg"
    try:
        if not path.is_file() or path.read_text() != LSL_QUIET_CONFIG:
            path.write_text(LSL_QUIET_CONFIG)
    except OSError:  # a read-only cache: liblsl keeps its defaults
        return
    os.environ["LSLAPICFG"] = str(path)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "verbose", False):
        from rt_eeg2fmri import set_log_level

        set_log_level("DEBUG")
    else:
        quiet_liblsl()
    if args.log_level:
        from rt_eeg2fmri import set_log_level

        set_log_level(args.log_level)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError, OSError) as err:
        print(f"rt-eeg2fmri {args.command}: error: {flag_message(str(err))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"rt-eeg2fmri {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
