"""Replications: one scenario under several seeds in parallel (on Dask), with confidence intervals.

A single simulated run is one draw; a prediction needs its spread. Replication k runs the scenario
with seed `seed + k` (replication 0 is the scenario's own seed and its record is the main one in
`out_dir`; the others go to `out_dir/replications/seed-N`). The main `summary.json` gains a
`replications` key: per metric the values, their mean and a Student-t 95% interval.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from scipy import stats

from formats.record import files
from formats.record.writer import merge_meta
from formats.scenario.model import Scenario

METRICS = ("duration_p50_s", "duration_p95_s", "reconnect_attempts", "peak_reconnects_per_s",
           "peak_reconnects_per_s_5s", "storms",
           "http_403", "duplicates_displayed", "lost_messages", "manual_refreshes", "connections",
           "clients_never_connected", "turned_away")


def _one(args: tuple[Scenario, str, Any, dict[str, Any]]) -> dict:
    from sim.engine import simulate

    scenario, out, calibration, options = args
    return simulate(scenario, out, calibration=calibration, **options)


def interval(values: list[float], level: float = 0.95) -> dict[str, Any]:
    """Mean and Student-t interval of the mean; null when fewer than two values are known."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return {"mean": None, "ci": None, "n": 0}
    mean = sum(xs) / len(xs)
    if len(xs) < 2:
        return {"mean": mean, "ci": None, "n": len(xs)}
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
    half = float(stats.t.ppf(0.5 + level / 2, len(xs) - 1)) * sd / math.sqrt(len(xs))
    return {"mean": mean, "ci": [mean - half, mean + half], "n": len(xs)}


def prediction_interval(values: list[float], level: float = 0.95, runs: int = 1) -> list[float] | None:
    """Where one more run (the mean of `runs` more runs) would fall with probability `level`
    (Student-t, unknown variance): mean ± t·sd·sqrt(1/runs + 1/n). This, not the interval of the
    mean, is what another engine's runs are compared with: the interval of the mean shrinks with more
    seeds, the compared runs' own noise does not. None when fewer than two values are known."""
    xs = [float(v) for v in values if v is not None]
    if len(xs) < 2:
        return None
    mean = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
    half = float(stats.t.ppf(0.5 + level / 2, len(xs) - 1)) * sd * math.sqrt(1 / runs + 1 / len(xs))
    return [mean - half, mean + half]


def spread(values: list[Any], level: float = 0.95) -> dict[str, Any]:
    """One metric over the replications: mean, interval of the mean (`ci`), one run's prediction
    interval (`pi`) and the values."""
    return {**interval(values, level), "pi": prediction_interval(values, level), "values": list(values)}


@dataclasses.dataclass(frozen=True)
class SeedJob:
    scenario: Scenario
    out: str
    calibration: Any
    options: dict[str, Any]


def _seed(out: Path, scenario: Scenario, calibration: Any, options: dict[str, Any]) -> dict:
    """One seed, as a `cluster.executor` job: its record is written into `out` on the worker."""
    return _one((scenario, str(out), calibration, options))


def run_parallel(jobs: list[SeedJob], workers: int | None = None, cluster: str | None = None
                 ) -> Iterator[tuple[int, dict]]:
    """(index, summary) of each job as it finishes, on Dask (`cluster`, or a local cluster of at
    most `workers` processes). Closing the iterator or a Ctrl-C while waiting cancels the jobs not
    finished; a seed that fails is named by the progress display and left out. This is the one
    place that knows the executor."""
    from cluster.executor import Job, as_finished

    batch = [Job(f"seed {job.scenario.seed}", _seed, (job.scenario, job.calibration, job.options),
                 dest=Path(job.out), tag=k) for k, job in enumerate(jobs)]
    for done in as_finished(batch, cluster=cluster, workers=workers,
                            title=f"replications of {jobs[0].scenario.name}" if jobs else "replications"):
        if done.ok:
            yield done.job.tag, done.value


def collect(jobs: list[SeedJob], finished: Iterable[tuple[int, dict]], out: Path) -> dict:
    """The main summary with the `replications` block, from whatever iterable yields the finished
    jobs (any executor). On Ctrl-C it writes the block of the seeds that finished, marked
    `incomplete`, marks the unfinished records incomplete, and re-raises saying what was kept."""
    summaries: dict[int, dict] = {}
    started = time.monotonic()
    try:
        for k, summary in finished:
            summaries[k] = summary
    except KeyboardInterrupt as exc:
        why = f"interrupted (Ctrl-C) after {time.monotonic() - started:.0f} s: " \
              f"{len(summaries)} of {len(jobs)} replications finished"
        for k, job in enumerate(jobs):
            if k not in summaries and Path(job.out).is_dir():
                merge_meta(Path(job.out), {files.META_INCOMPLETE: why})
        if summaries:
            write_replications(jobs, summaries, out, why)
        cancelled = f" ({exc})" if str(exc) else ""
        raise KeyboardInterrupt(f"{why}{cancelled}; their summary is in {out / files.SUMMARY}" if summaries
                                else f"{why}{cancelled}; nothing was kept") from None
    return write_replications(jobs, summaries, out, None)


def write_replications(jobs: list[SeedJob], summaries: dict[int, dict], out: Path, incomplete: str | None) -> dict:
    """The main `summary.json` in `out` with the `replications` block of the finished seeds (`sweep` writes
    one per point from its own jobs)."""
    done = sorted(summaries)
    block = {"n": len(done), "seeds": [jobs[k].scenario.seed for k in done], "level": 0.95,
             "runs": [str(Path(jobs[k].out).relative_to(out)) if k else "." for k in done],
             "metrics": {m: spread([summaries[k].get(m) for k in done]) for m in METRICS}}
    if incomplete:
        block["incomplete"] = incomplete
        block["planned"] = len(jobs)
    main = dict(summaries.get(0) or summaries[done[0]])
    main["replications"] = block
    out.mkdir(parents=True, exist_ok=True)
    (out / files.SUMMARY).write_text(json.dumps(main, indent=2) + "\n")
    return main


def seed_jobs(scenario: Scenario, out: Path, replications: int, calibration: Any = None,
              **options: Any) -> list[SeedJob]:
    """Replication k: seed `seed + k`; 0 is the main record in `out`, others in `out/replications/seed-N`."""
    if replications < 1:
        raise ValueError(f"--replications: expected an integer >= 1, got {replications}")
    jobs = []
    for k in range(replications):
        sc = dataclasses.replace(scenario, seed=scenario.seed + k)
        where = out if k == 0 else out / "replications" / f"seed-{sc.seed}"
        jobs.append(SeedJob(sc, str(where), calibration, options))
    return jobs


def replicate(scenario: Scenario, out_dir: str | Path, replications: int, *, calibration: Any = None,
              workers: int | None = None, cluster: str | None = None, **options: Any) -> dict:
    """Run `replications` seeds (in parallel on Dask: `cluster`, or a local cluster of at most
    `workers` processes), return the main summary with intervals. `options` go to every
    `sim.engine.simulate` call (e.g. `expiry_grace`)."""
    out = Path(out_dir)
    jobs = seed_jobs(scenario, out, replications, calibration, **options)
    return collect(jobs, run_parallel(jobs, workers, cluster), out)
