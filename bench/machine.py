"""What a benchmark record says about the machine it ran on, the same in every script under bench/.

Ratios measured here differ between CPUs (the guide's long, padded batches gain more from wide
vector units than our short ones) and with the cores a process may use, so each record names both.

Example:

>>> sorted(describe_machine())
['cores', 'cpu', 'platform', 'processor']
"""

import os
import platform
from pathlib import Path


def usable_cores():
    """The CPU cores this process may run on (its affinity, where the OS reports one: right under a
    cgroup or `taskset`, where `os.cpu_count()` counts the whole machine)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def cpu_model():
    """The CPU's model name and the vector extensions that matter here."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return platform.processor()
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = fields.get("flags", "").split()
    wanted = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if flag in flags]
    return f"{fields.get('model name', 'unknown')} ({fields.get('vendor_id', '')}, {' '.join(wanted) or 'no AVX2'})"


def describe_machine():
    """The platform, the CPU model and the cores this process may use, for a benchmark record."""
    return {"platform": platform.platform(), "processor": platform.processor(), "cpu": cpu_model(),
            "cores": usable_cores()}
