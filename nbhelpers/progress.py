"""What a long run shows while it works: shared by the runner's console and the training callback.

>>> format_duration(192)
'3m 12s'
"""

# The runner's `--quiet` sets this in its kernels' environment: training prints no progress lines.
QUIET_ENV = "NBHELPERS_QUIET"
# While a model trains (or a notebook cell runs), a line at least this often.
PROGRESS_SECONDS = 60


def format_duration(seconds):
    """`3725` -> "1h 02m", `192` -> "3m 12s", `8.4` -> "8s"."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
