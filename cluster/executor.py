"""Run many independent jobs (simulated seeds, sweep points, emulations) on Dask distributed.

Why Dask: a capacity grid of hundreds of points x seeds outgrows one machine, and a user who has
more machines already runs (or can start with two commands) a Dask scheduler and workers. So
there is one engine for every many-runs command, and no home-made RPC, queue or scheduler:

- no address: a `LocalCluster` on this machine, one single-threaded worker process per usable
  core (the simulation is pure-Python CPU work: threads would share one GIL), listening on
  127.0.0.1 only (its HTTP endpoint too, on a free port);
- `--cluster tcp://HOST:PORT` or `$STORMBENCH_CLUSTER`: that scheduler's workers, which need only
  the project installed.

A job writes a run-record folder on whichever worker runs it; the worker returns the folder as a
gzipped tar (bytes) with the job's value, and the client unpacks it where the job says
(`Job.dest`). No shared filesystem is needed; the record lands as if written locally.

`as_finished` yields each job as it finishes and shows progress (a bar on a terminal, a line per
job in a log), names a failed job by its label (its seed, its grid point) and goes on with the
rest, and on Ctrl-C cancels the jobs not yet finished and raises `KeyboardInterrupt` saying how
many finished: what finished is already unpacked and was already yielded.
"""
from __future__ import annotations

import argparse
import io
import logging
import os
import tarfile
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from system.errors import UsageError

ENV_VAR = "STORMBENCH_CLUSTER"
CONNECT_TIMEOUT_S = 10.0  # for a named scheduler to answer
WORKERS_TIMEOUT_S = 30.0  # for a named scheduler to have at least one worker
RECORD = "record"  # the job's output folder inside its temporary directory on the worker


def add_argument(parser: argparse.ArgumentParser, also: str = "") -> None:
    parser.add_argument("--cluster", metavar="tcp://HOST:PORT",
                        help=f"run on this Dask scheduler's workers (default: ${ENV_VAR}, else a local cluster "
                             f"of one worker process per usable core on 127.0.0.1){also}")


def address(flag: str | None) -> str | None:
    """The scheduler to use: the flag, else the environment, else None (a local cluster)."""
    return flag or os.environ.get(ENV_VAR) or None


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextmanager
def connect(cluster: str | None, workers: int | None = None, *, children: bool = False) -> Iterator[Any]:
    """A `distributed.Client` on `cluster`, or on a local cluster of `workers` processes (default:
    the usable cores). `children`: the local workers may start processes of their own (an
    emulation starts a server, a proxy and client workers), so they must not be daemonic."""
    import dask
    from distributed import Client, LocalCluster

    if cluster:
        try:
            client = Client(cluster, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            raise UsageError(f"--cluster {cluster}: no Dask scheduler answers there ({exc}); start one with "
                             f"`dask scheduler` (README \"Running on a cluster\")") from None
        try:
            client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            client.close()
            raise UsageError(f"--cluster {cluster}: the scheduler has no workers ({exc}); start one with "
                             f"`dask worker {cluster}`") from None
        try:
            yield client
        finally:
            client.close()
        return
    n = max(1, workers or usable_cores())
    with dask.config.set({"distributed.worker.daemon": not children}):
        local = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                             dashboard_address=":0", memory_limit=0, silence_logs=logging.CRITICAL,
                             preload=[__name__])  # dask_setup below
    try:
        with Client(local) as client:
            yield client
    finally:
        local.close()


def dask_setup(worker: Any) -> None:
    """Preloaded by the local cluster's worker processes. They share the terminal's process group,
    so Ctrl-C reaches them too: they ignore it, and the client cancels their jobs and stops them
    (instead of each printing a traceback and its nanny starting it again)."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass(frozen=True)
class Job:
    """One run. `fn(out_dir, *args, **kwargs)` is called on a worker (a module-level function, so
    the worker imports it by name) with a fresh folder to fill; that folder is unpacked into `dest`
    on the client (None: the job writes nothing to keep). `label` names the job in progress lines
    and failures: its seed, its grid point. `tag` stays on the client, for the caller to know
    which of its jobs a `Done` is."""

    label: str
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    dest: Path | None = None
    tag: Any = None


@dataclass
class Done:
    job: Job
    value: Any = None
    error: str | None = None  # "TypeName: message" when the job failed

    @property
    def ok(self) -> bool:
        return self.error is None


def execute(fn: Callable[..., Any], args: tuple, kwargs: dict, keep: bool) -> tuple[Any, bytes | None]:
    """On the worker: run the job in a temporary folder, return its value and the folder packed."""
    with tempfile.TemporaryDirectory(prefix="stormbench-job-") as tmp:
        out = Path(tmp) / RECORD
        value = fn(out, *args, **kwargs)
        return value, (pack(out) if keep else None)


def pack(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:  # level 9 costs a job more time than the
        # bytes it saves cost on the wire
        if folder.exists():
            for path in sorted(folder.iterdir()):
                tar.add(path, arcname=path.name)
    return buf.getvalue()


def unpack(data: bytes, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")  # no absolute paths, links out or devices from a worker


def as_finished(jobs: Sequence[Job], *, cluster: str | None = None, workers: int | None = None,
                limit: int | None = None, title: str = "runs", children: bool = False) -> Iterator[Done]:
    """Run `jobs` on `cluster` (or a local cluster of at most `workers` processes, one per job),
    at most `limit` at a time (None: all submitted at once; 1: one after another, for runs that
    must not share a machine's CPUs), and yield each job's `Done` as it finishes (a failed one
    too, with `error`). A job's progress line is shown once the caller has taken its `Done`, so a
    line read means the caller has it. A Ctrl-C while waiting cancels the jobs not finished and
    raises `KeyboardInterrupt` saying how many finished; a caller that stops early cancels the rest."""
    if not jobs:
        return
    local_workers = min(len(jobs), limit or len(jobs), workers or usable_cores())
    with connect(cluster, local_workers, children=children) as client, Display(title, len(jobs)) as display:
        from distributed import as_completed

        index_of: dict[Any, int] = {}

        def submit(i: int) -> Any:
            job = jobs[i]
            future = client.submit(execute, job.fn, job.args, job.kwargs, job.dest is not None, pure=False,
                                   key=f"stormbench-{i}-{os.getpid()}-{time.monotonic_ns()}")
            index_of[future] = i
            return future

        first = min(len(jobs), limit or len(jobs))
        waiting = iter(range(first, len(jobs)))
        pending = as_completed([submit(i) for i in range(first)])
        finished = 0
        try:
            for future in pending:
                job = jobs[index_of.pop(future)]
                if future.status == "finished":
                    value, packed = future.result()
                    try:
                        if packed is not None and job.dest is not None:
                            unpack(packed, job.dest)
                        done = Done(job, value)
                    except OSError as exc:  # the record came back but cannot land here (disk, a file in the way)
                        done = Done(job, error=f"{type(exc).__name__}: {job.dest}: {exc.strerror or exc}")
                else:
                    exc = future.exception()
                    done = Done(job, error=f"{type(exc).__name__}: {exc}")
                future.release()
                nxt = next(waiting, None)
                if nxt is not None:
                    pending.add(submit(nxt))
                yield done
                finished += 1
                display.finished(done)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(f"{title}: {finished} of {len(jobs)} jobs finished and kept, "
                                    f"{len(jobs) - finished} cancelled") from None
        finally:
            if index_of:
                client.cancel(list(index_of))


def run_jobs(jobs: Sequence[Job], **options: Any) -> list[Done]:
    """`as_finished`, every `Done` in the order of `jobs`."""
    order = {id(job): i for i, job in enumerate(jobs)}
    return sorted(as_finished(jobs, **options), key=lambda d: order[id(d.job)])


class Display:
    """How far a batch is: a bar on a terminal; in a log, one line per finished job. A failure
    is always a line of its own, naming the job."""

    def __init__(self, title: str, total: int) -> None:
        from rich.console import Console

        self.title, self.total, self.count, self.failed = title, total, 0, 0
        self.started = time.monotonic()
        self.console = Console(stderr=True)
        self.bar = None

    def __enter__(self) -> "Display":
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn(self.title), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                console=self.console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.title, total=self.total)
        else:
            print(f"{self.title}: {self.total} to run", flush=True)
        return self

    def finished(self, d: Done) -> None:
        self.count += 1
        elapsed = time.monotonic() - self.started
        if not d.ok:
            self.failed += 1
            self.console.print(f"{self.title}: FAILED {d.job.label}: {d.error}", markup=False, highlight=False)
        if self.bar is not None:
            self.bar.update(self.task, completed=self.count)
        elif d.ok:
            print(f"{self.title}: {self.count}/{self.total} done ({d.job.label}) after {elapsed:.0f} s", flush=True)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()
        failed = f", {self.failed} failed" if self.failed else ""
        print(f"{self.title}: {self.count}/{self.total} finished{failed} in "
              f"{time.monotonic() - self.started:.0f} s", flush=True)
