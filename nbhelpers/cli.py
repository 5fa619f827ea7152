"""What every command line of the package does with bad input: one clear line, never a traceback.

`run_command(main, prog)` runs a command's `main` and turns an error into one line on stderr
(`prog: error: message`) and exit status 1. `--debug` on the command line, or the environment
variable `NBHELPERS_DEBUG=1`, shows the full traceback instead, for those who want it.

Example (the end of a command's module):

>>> if __name__ == "__main__":
...     sys.exit(run_command(main, "nbhelpers.predict"))
"""

import os
import sys
import traceback

DEBUG_ENV = "NBHELPERS_DEBUG"
DEBUG_FLAG = "--debug"
DEBUG_HELP = f"show the full traceback of an error (or set {DEBUG_ENV}=1)"


class UserError(SystemExit):
    """Bad input the user can fix. Its message is the whole answer, one line; exit status 1.

    A `SystemExit`, so a `main` called from Python (tests, notebooks) stops the same way.
    """


def debugging(argv=None):
    """Whether tracebacks were asked for: `--debug` among `argv` (default `sys.argv`), or `NBHELPERS_DEBUG`."""
    argv = sys.argv[1:] if argv is None else argv
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def one_line(exc):
    """An exception as one line: its message's lines joined, the type named where the message is bare."""
    message = " ".join(str(exc).split()) if str(exc).strip() else ""
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    if isinstance(exc, (SystemExit, KeyError)) or type(exc).__module__.startswith("nbhelpers"):
        return message.strip("'\"") if isinstance(exc, KeyError) else message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def run_command(main, prog, argv=None):
    """Call `main(argv)` and return its exit status; an error becomes one line on stderr and status 1.

    Args:
        main: the command's entry point, returning an exit status.
        prog: the command's name, the line's prefix (e.g. "nbhelpers.run").
        argv: the arguments (default `sys.argv[1:]`).
    """
    argv = sys.argv[1:] if argv is None else argv
    try:
        return main(argv)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):  # argparse's own exits, or a status
            raise
        if debugging(argv):
            traceback.print_exc()
        else:
            print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001  (the point: no traceback for the user)
        if debugging(argv):
            raise
        # Our own errors are written for the user; anything else may be a bug, worth a traceback.
        hint = "" if type(exc).__module__.startswith("nbhelpers") else f" (run with {DEBUG_FLAG} for the traceback)"
        print(f"{prog}: error: {one_line(exc)}{hint}", file=sys.stderr)
        return 1
