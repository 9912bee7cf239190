"""The model against textbook answers: settings simple enough to solve on paper."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from formats.record import RunRecord
from formats.scenario import draws
from formats.scenario import from_dict
from sim import closed_form
from sim.calibration import Calibration, Dist
from sim.engine import scaled_calibration, simulate
from sim.world import EXPIRY_GRACE_S, ModelOptions, World


def scenario(**over):
    doc = {"name": "closed-form", "seed": 7, "duration": "6h",
           "system": {"behaviour": "fixed", "token_ttl": "1h", "live_expiry": True},
           "fleet": {"clients": 300, "profile": "fixed"}}
    for key, value in over.items():
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value
    return from_dict(doc)


@pytest.mark.parametrize("spread", [True, pytest.param(False, marks=pytest.mark.slow)])  # (without: the control)
@pytest.mark.parametrize("herd", ["ramp", "spike"])
def test_a_weighted_fleet_arrives_as_independent_clients_do(tmp_path, monkeypatch, herd, spread):
    """The herd oracle on an arrival window: 100,000 clients each arriving at U(0, 60 s) of it, as
    5,000 agents of 20: the fleet on its arrival ramp, or a load spike's clients (after the fleet
    has arrived). Each agent's clients arrive on their own (its `arrival` record's law, spread by
    `formats.record.derive`), so the first attempts' 1-s maximum is that of 100,000 independent
    draws in 60 bins (`closed_form.herd_peak_band`); counted at their agents' 5,000 times (the
    `arrival` records left out) it lands far above the band, which is what the spread removes."""
    window, clients = 60, 100_000
    cal = Calibration(handshake_servers=64, handshake_service=Dist("fixed", 0.001), token_latency=Dist("fixed", 0.0),
                      token_service=None, close_service=None)
    if herd == "ramp":
        sc = scenario(duration="2m", fleet={"clients": 100, "sim_clients": clients, "arrival": {"ramp": f"{window}s"}})
        start = 0
    else:  # a spike as large as the fleet, arriving over the ramp's length, a window after the fleet
        start = 2 * window
        sc = scenario(duration="4m", fleet={"clients": 100, "sim_clients": clients, "arrival": {"ramp": f"{window}s"}},
                      faults=[{"at": f"{start}s", "kind": "load_spike", "clients": 100}])
    if not spread:
        import sim.world
        monkeypatch.setattr(sim.world, "TALLIED", sim.world.TALLIED - {"arrival"})
    simulate(sc, tmp_path / "run", calibration=cal, max_agents=5_000, max_wall_s=None)
    assert json.loads((tmp_path / "run" / "meta.json").read_text())["sampling"]["weight"] == 20
    ts = RunRecord(tmp_path / "run").timeseries.set_index("t")
    herd_ = ts.loc[start:start + window - 1]
    assert herd_["attempts"].sum() == clients
    assert ts.loc[start + window:start + window + 10, "attempts"].sum() == 0  # nothing else in the window
    low, high = closed_form.herd_peak_band(clients, window)
    assert (low <= herd_["attempts"].max() <= high) == spread
    assert (low <= herd_["opens"].max() <= high) == spread  # each client's open follows its attempt


@pytest.mark.slow
def test_capped_exponential_lifetimes(tmp_path):
    """Drops at rate λ and a token that ends every socket at T: lifetime ~ min(Exp(λ), T).

    The client opens a new socket for each token and leaves the old one open (stable_socket and
    single_writer off), so each socket lives until a drop or until its own token expires (4401,
    after the server's grace)."""
    rate, ttl = 1 / 1800, 3600.0 + EXPIRY_GRACE_S
    sc = scenario(duration="24h", system={"token_ttl": "1h"},
                  fleet={"clients": 1200, "profile": {"base": "fixed", "disable": ["stable_socket", "single_writer"]},
                         "network": {"drops": {"every": "30m"}}})
    summary = simulate(sc, tmp_path / "run", exact_limit=0)  # the derived tables, no events.jsonl to reread
    assert summary["connections"] > 40000
    for q, key in ((0.5, "duration_p50_s"), (0.95, "duration_p95_s")):
        expected = closed_form.capped_exponential_quantile(rate, ttl, q)
        assert summary[key] == pytest.approx(expected, rel=0.02), key
    # the mean of the uncensored and censored lifetimes together, by Kaplan–Meier
    assert summary["duration_mean_s"] == pytest.approx(closed_form.capped_exponential_mean(rate, ttl), rel=0.02)
    closes = summary["closes_by_code"]
    assert int(closes["4401"]) > 0 and int(closes["1006"]) > 0  # both ends of the min() happened


def test_accept_queue_is_erlang_c():
    """Handshakes arriving as a Poisson stream at c servers with exponential service: M/M/c."""
    servers, service_mean, n, ramp = 4, 0.01, 30000, 100.0
    cal = Calibration(handshake_servers=servers, handshake_service=Dist("exponential", service_mean),
                      token_latency=Dist("fixed", 0.0))
    sc = scenario(duration=ramp + 30, fleet={"clients": n, "arrival": {"ramp": ramp}})
    world = World(sc, cal, clients=n, options=ModelOptions(keep_all_records=False))
    world.server.handshake.waits = []
    world.run()
    waits = np.asarray(world.server.handshake.waits)
    assert waits.size == n
    lam = n / ramp  # uniform arrivals of n clients over the ramp: a Poisson stream given its count
    expected = closed_form.mmc_mean_wait(servers, lam, 1 / service_mean)
    assert expected > 0.001  # the queue does wait: a test of something
    assert waits.mean() == pytest.approx(expected, rel=0.03)


def test_restart_herd_arrives_at_n_over_w(tmp_path):
    """A graceful restart: every fixed client waits U(0, W) after the 1012, so reconnects arrive at N/W."""
    n, at = 3000, 600
    cal = Calibration(restart_downtime_s=0.0)
    sc = scenario(duration="20m", fleet={"clients": n}, faults=[{"at": at, "kind": "server_restart"}])
    sc = dataclasses.replace(sc, faults=tuple(sc.faults))
    simulate(sc, tmp_path / "run", calibration=cal)
    rec = RunRecord(tmp_path / "run")
    window = 10.0  # ClientConfig.restart_window, the fixed client's full-jitter window for 1012
    ts = rec.timeseries.set_index("t")
    herd = ts.loc[at:at + window - 1, "reconnects"].to_numpy(float)
    assert herd.sum() == pytest.approx(n, rel=0.01)
    assert herd.mean() == pytest.approx(closed_form.herd_arrival_rate(n, window), rel=0.02)
    # spread evenly, not bunched: every second within 5 sd of the mean rate
    assert np.all(np.abs(herd - n / window) < 5 * math.sqrt(n / window))
    assert ts.loc[at + window + 5:, "reconnects"].sum() == 0


def test_queued_connects_time_out_and_retry():
    """N clients arrive over W at one FIFO server answering C handshakes/s (C < N/W): a connect
    still unanswered after the driver's open timeout fails, and its client retries, as real
    clients do; the ones answered in time open at once. The timed-out clients retry only after
    every first arrival (W < timeout), so the first pass is exactly the closed form. The listen
    queue here has room for every arrival (a full one: the next test)."""
    n, window, rate, timeout = 2000, 1.0, 800.0, 1.0
    cal = Calibration(handshake_servers=1, handshake_service=Dist("fixed", 1 / rate),
                      token_latency=Dist("fixed", 0.0), token_service=None, close_service=None,
                      connect_timeout_s=timeout)
    sc = scenario(duration="2m", fleet={"clients": n, "arrival": {"ramp": window}})
    world = World(sc, cal, clients=n)
    world.server.listener.limit = n
    world.run()
    late = {draws.client_id(i) for i in closed_form.fifo_timeouts(draws.arrival_times(sc, n), rate, timeout)}
    assert 400 < len(late) < n - 400  # both kinds are there: the last third of the herd waits too long
    first_failed = {r["client"] for r in world.records
                    if r["kind"] == "handshake_failed" and r["sock"] == 1 and r["status"] is None}
    assert first_failed == late
    retried = {r["client"] for r in world.records if r["kind"] == "attempt" and r["n"] >= 1}
    assert retried == late
    opened_first = {r["client"] for r in world.records if r["kind"] == "open" and r["sock"] == 1}
    assert opened_first == {draws.client_id(i) for i in range(n)} - late
    opened = {r["client"] for r in world.records if r["kind"] == "open"}
    assert opened == {draws.client_id(i) for i in range(n)}  # the retries got through, later


@pytest.mark.parametrize("weight", [1, 4])
def test_a_full_listen_queue_drops_syns_and_the_cpu_serves_only_live_connects(weight):
    """N connects at once at one FIFO server of C handshakes/s behind a listen queue of L (three
    backlogs, `sim.server.Listener`), L/C < 1 s: L are taken, the rest are dropped and come back at
    the SYN retransmissions 1, 3 and 7 s after the first, L each time (the queue has drained), and
    those still out at the 10-s open timeout fail and back off. The server never spends a handshake
    on a connect its client gave up (without the bound it spent nearly all of them so in a restart
    herd larger than the timeout's worth of queue, and never recovered).
    Agents standing for `weight` clients each (a handshake's service `weight` times longer) meet a
    queue of L / `weight` agents: the same clients' worth in each wave, served in the same time
    (a queue of L agents held `weight` times the work, past the open timeout in a large herd)."""
    n, rate, timeout = 2000 // weight, 800.0, 10.0
    cal = scaled_calibration(Calibration(handshake_servers=1, handshake_service=Dist("fixed", 1 / rate),
                                         token_latency=Dist("fixed", 0.0), token_service=None, close_service=None,
                                         connect_timeout_s=timeout), weight)
    rate /= weight
    sc = scenario(duration="40s", fleet={"clients": n, "arrival": {"ramp": "1ms"}})  # within one service time
    world = World(sc, cal, clients=n, weight=weight)
    limit = world.server.listener.limit
    assert limit * weight == 300 and limit / rate < 1.0
    wasted = []
    done = world.server._handshake_done
    world.server._handshake_done = lambda s, *rest: (wasted.append(s) if s.state != "connecting" else None,
                                                     done(s, *rest))
    world.run()
    first_open = sorted(r["t"] for r in world.records if r["kind"] == "open" and r["sock"] == 1)
    waves = [0.0, 1.0, 3.0, 7.0]
    assert len(first_open) == len(waves) * limit
    for k, at in enumerate(waves):  # each wave is served within its queue's worth of handshakes
        wave = first_open[k * limit:(k + 1) * limit]
        assert at <= wave[0] and wave[-1] <= at + 0.001 + limit / rate
    timed_out = [r for r in world.records if r["kind"] == "handshake_failed" and r["sock"] == 1]
    assert len(timed_out) == n - len(waves) * limit
    assert all(timeout <= r["t"] <= timeout + 0.001 for r in timed_out)
    assert wasted == []
    assert {r["client"] for r in world.records if r["kind"] == "open"} == {draws.client_id(i) for i in range(n)}


def test_a_weighted_listen_queue_keeps_every_cpu_server_busy():
    """C servers of S s each, agents of weight w (S·w each): the queue of 3 backlogs / w agents is
    smaller than C here, but it still takes C agents at once, so C connects at once are all served in
    one (weighted) service time, as the real queue takes C·w clients' connects onto its C servers;
    a queue of 3 backlogs / w agents left servers idle and dropped the rest of the SYNs for 1 s."""
    servers, service, weight = 64, 0.001, 20
    cal = scaled_calibration(Calibration(handshake_servers=servers, handshake_service=Dist("fixed", service),
                                         token_latency=Dist("fixed", 0.0), token_service=None, close_service=None),
                             weight)
    sc = scenario(duration="5s", fleet={"clients": servers, "arrival": {"ramp": "1ms"}})
    world = World(sc, cal, clients=servers, weight=weight)
    assert world.server.listener.limit == servers  # 3 backlogs of 100 / 20 would be 15
    world.run()
    opened = sorted(r["t"] for r in world.records if r["kind"] == "open" and r["sock"] == 1)
    assert len(opened) == servers
    assert opened[-1] <= 0.001 + service * weight + 1e-9  # one weighted service time after the last arrival


def test_a_token_request_the_server_holds_past_the_clients_timeout_fails_then():
    """N logins at once at a token endpoint that serves one at a time in S s each, with a request
    timeout of T: the k-th is answered at k·S from the first, so those with k·S within T of their
    own send succeed and the rest fail at exactly T (the driver's HTTP timeout), though the listen
    queue took them all. The server still serves every one when its turn comes: it cannot know
    the client left. (Before, a request the server had taken waited for its answer however long.)"""
    n, service, timeout = 30, 1.0, 10.0
    cal = Calibration(handshake_servers=1, handshake_service=Dist("fixed", 0.001), token_latency=Dist("fixed", 0.0),
                      token_service=Dist("fixed", service), close_service=None, connect_timeout_s=timeout)
    sc = scenario(duration="31s", fleet={"clients": n, "arrival": {"ramp": "1ms"}})
    world = World(sc, cal, clients=n)
    assert world.tokens.listener.limit >= n  # no SYN is dropped: only the server's own queue delays them
    world.build()
    world.env.run(until=n * service + 0.01)
    served = world.tokens.issued
    starts = {life.client_id: life.start for life in world.plan.lifetimes}
    first: dict[str, dict] = {}
    for r in world.records:
        if r["kind"] == "token":
            first.setdefault(r["client"], r)
    answered = sorted(r["t"] for r in first.values() if r["ok"])
    failed = [r for r in first.values() if not r["ok"]]
    t0 = min(starts.values())
    within = int(timeout // service)
    assert answered == pytest.approx([t0 + k * service for k in range(1, within + 1)], abs=1e-9)
    assert len(failed) == n - within
    assert all(r["t"] == pytest.approx(starts[r["client"]] + timeout, abs=1e-9) for r in failed)
    assert served >= n  # every login was served, the late ones after their clients had gone


@pytest.mark.parametrize("clients, agents, weight", [
    pytest.param(100_000, 100_000, 1, marks=[pytest.mark.slow, pytest.mark.timeout(1800)]),  # minutes of CPU
    (100_000, 5_000, 20),
    pytest.param(1_000_000, 50_000, 20, marks=[pytest.mark.slow, pytest.mark.timeout(1800)]),
])
def test_full_jitter_restart_herd_peaks_as_independent_clients_do(tmp_path, clients, agents, weight):
    """The herd oracle: `clients` fixed clients, each waiting U(0, W) after one graceful restart
    with W = 60 s (`fleet.restart_window`). Reconnects arrive at N/W (1,666.7/s for 100,000), and
    the highest 1-s count of the 60 is that of N independent uniform draws in 60 bins: within the
    multinomial maximum's 95% band (`closed_form.herd_peak_band`, about 1,734-1,804 for 100,000).
    One agent per client, and weighted agents: an agent's 20 clients draw their own delays from the
    restart window (`formats.record.derive`), where one draw for all 20 put the peak near 2,100.
    A server with room for all (64 handshake slots of 1 ms) keeps queueing out of the picture."""
    at, window = 300, 60
    cal = Calibration(handshake_servers=64, handshake_service=Dist("fixed", 0.001), token_latency=Dist("fixed", 0.0),
                      token_service=None, close_service=None, restart_downtime_s=0.0)
    sc = scenario(duration="8m", fleet={"clients": min(clients, 100_000), "sim_clients": clients,
                                        "arrival": {"ramp": "1m"}, "restart_window": f"{window}s"},
                  faults=[{"at": at, "kind": "server_restart"}])
    summary = simulate(sc, tmp_path / "run", calibration=cal, max_agents=agents, max_wall_s=None)
    assert json.loads((tmp_path / "run" / "meta.json").read_text())["sampling"]["weight"] == weight
    ts = RunRecord(tmp_path / "run").timeseries.set_index("t")
    herd = ts.loc[at:at + window - 1, "reconnects"].to_numpy(float)
    assert herd.sum() == clients == summary["reconnect_attempts"]
    assert herd.mean() == pytest.approx(closed_form.herd_arrival_rate(clients, window), rel=1e-9)
    low, high = closed_form.herd_peak_band(clients, window)
    assert low <= herd.max() <= high
    assert low <= ts.loc[at:at + window - 1, "opens"].max() <= high  # each client's answer follows its attempt
