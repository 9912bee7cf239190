"""Host facts for meta.json: a run is only comparable with runs on a similar machine."""
from __future__ import annotations

import os
import platform
import resource
import sys
from typing import Any

import psutil

from system.server.fdlimit import raise_soft_limit


def fd_limit() -> int:
    """This process's open-files limit, raised to the hard limit first as the server raises its
    own (each proxied connection costs two descriptors in the proxy and one in a worker)."""
    soft = raise_soft_limit()
    return int(soft if soft != resource.RLIM_INFINITY else 1 << 20)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), which the server, workers and proxy share."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def host_facts() -> dict[str, Any]:
    vm = psutil.virtual_memory()
    try:
        import uvloop  # noqa: F401
        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "cpus_usable": usable_cpus(),
        "memory_bytes": vm.total,
        "fd_limit": fd_limit(),
        "event_loop": loop,
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
