"""Replications: one scenario under several seeds in parallel (on Dask), with confidence intervals.

A single simulated run is one draw; a prediction needs its spread. Replication k runs the scenario
with seed `seed + k` (replication 0 is the scenario's own seed and its record is the main one in
`out_dir`; the others go to `out_dir/replications/seed-N`). The main `summary.json` gains a
`replications` key: per metric the values, their mean and a Student-t 95% interval.
The seeds run as `cluster.executor` jobs (a local cluster, or `cluster=` a Dask scheduler); a seed
that fails is named in `replications.failed` and left out of the intervals.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from scipy import stats

from harness.record import files
from harness.scenario.model import Scenario

METRICS = ("duration_p50_s", "duration_p95_s", "reconnect_attempts", "peak_reconnects_per_s",
           "peak_reconnects_per_s_5s", "storms",
           "http_403", "duplicates_displayed", "lost_messages", "manual_refreshes", "connections")


def _one(out: Path, scenario: Scenario, calibration: Any, options: dict[str, Any]) -> dict:
    from sim.engine import simulate

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


def replicate(scenario: Scenario, out_dir: str | Path, replications: int, *, calibration: Any = None,
              workers: int | None = None, cluster: str | None = None, **options: Any) -> dict:
    """Run `replications` seeds (in parallel on `cluster`, or a local cluster of at most `workers`
    processes), return the main summary with intervals. `options` go to every
    `sim.engine.simulate` call (e.g. `expiry_grace`)."""
    from cluster.executor import Job, run_jobs

    if replications < 1:
        raise ValueError(f"--replications: expected an integer >= 1, got {replications}")
    out = Path(out_dir)
    jobs = []
    for k in range(replications):
        sc = dataclasses.replace(scenario, seed=scenario.seed + k)
        where = out if k == 0 else out / "replications" / f"seed-{sc.seed}"
        jobs.append((sc, str(where), calibration, options))
    done = run_jobs([Job(f"seed {sc.seed}", _one, (sc, calibration, options), dest=Path(where))
                     for sc, where, calibration, options in jobs],
                    cluster=cluster, workers=workers, title=f"replications of {scenario.name}")
    if not done[0].ok:
        raise RuntimeError(f"replication seed {scenario.seed} (the main record) failed: {done[0].error}")
    summaries = [d.value if d.ok else {} for d in done]
    block = {"n": replications, "seeds": [j[0].seed for j in jobs], "level": 0.95,
             **({"failed": {str(j[0].seed): d.error for j, d in zip(jobs, done) if not d.ok}}
                if not all(d.ok for d in done) else {}),
             "runs": [str(Path(j[1]).relative_to(out)) if k else "." for k, j in enumerate(jobs)],
             "metrics": {m: spread([s.get(m) for s in summaries]) for m in METRICS}}
    main = dict(summaries[0])
    main["replications"] = block
    (out / files.SUMMARY).write_text(json.dumps(main, indent=2) + "\n")
    return main
