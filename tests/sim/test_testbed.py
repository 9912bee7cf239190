"""The emulation's load generator in the model (`sim.testbed`), used by `validate` only.

Closed forms: N requests of testbed cost s through c otherwise idle cores take N·s/c; with one
core the server's own work waits for it too, so everything runs one after the other."""
from __future__ import annotations

import json

import pytest

from formats.scenario.draws import client_id
from formats.scenario.plan import Lifetime

from formats.scenario import from_dict
from sim.calibration import Calibration, Dist
from sim.calibration import Testbed as Bed  # (not a pytest class)
from sim.world import World

DOC = {"name": "testbed", "seed": 3, "duration": "1h", "time_scale": 1,
       "system": {"behaviour": "fixed", "token_ttl": "15m", "live_expiry": True,
                  "heartbeat": {"interval": "30s", "timeout": "20s"}},
       "fleet": {"clients": 10, "profile": "fixed"}}


def opens(n: int, testbed: Bed | None, *, handshake: float = 0.0, token: float = 0.0) -> list[float]:
    """n clients start at t=0 (a token request, then a connect each); when each socket opened."""
    cal = Calibration(handshake_service=Dist("fixed", handshake), token_service=Dist("fixed", token),
                      token_latency=Dist("fixed", 0.0), close_service=None)
    world = World(from_dict(DOC), cal, clients=n, testbed=testbed)
    for i in range(n):
        world.add_client(Lifetime(i, client_id(i), 0.0, world.duration))
    world.env.run(until=60)
    return sorted(r["t"] for r in world.records if r["kind"] == "open")


@pytest.mark.parametrize("cores", [1, 2, 4])
def test_n_requests_through_c_cores_take_n_s_over_c(cores):
    n, s = 40, 0.01
    got = opens(n, Bed(cores, Dist("fixed", s), Dist("fixed", s)))
    assert len(got) == n
    assert got[-1] == pytest.approx(2 * n * s / cores)  # a token request and a connect per client
    assert opens(n, None)[-1] == pytest.approx(0.0)  # without the testbed: no such cost


def test_the_server_waits_for_a_core_the_testbed_holds():
    """One core: the testbed's work and the server's handshakes and refreshes run one at a time."""
    n, s, h, t = 20, 0.01, 0.02, 0.005
    got = opens(n, Bed(1, Dist("fixed", s), Dist("fixed", s)), handshake=h, token=t)
    assert got[-1] == pytest.approx(n * (2 * s + h + t))
    many = opens(n, Bed(64, Dist("fixed", s), Dist("fixed", s)), handshake=h, token=t)  # cores to spare: the server's pace
    assert n * (h + t) <= many[-1] <= n * (h + t) + 2 * s


def test_the_testbed_round_trips_and_scales_with_the_time_scale():
    cal = Calibration(testbed=Bed(2, Dist("exponential", 0.0004), Dist("lognormal", 0.0006, 0.3),
                                  server_connect=Dist("fixed", 0.0005)))
    again = Calibration.from_json(json.loads(json.dumps(cal.to_json())))
    assert again.testbed == cal.testbed
    slow = cal.compressed(30).testbed
    assert (slow.token_cost.mean, slow.connect_cost.mean, slow.server_connect.mean) == pytest.approx((0.012, 0.018, 0.015))
    assert slow.server_token is None
    served = slow.serving(cal.compressed(30))  # the server's CPU per connect replaces the handshake latency
    assert served.handshake_service == Dist("fixed", 0.015)
    assert served.token_service == cal.compressed(30).token_service
    assert Calibration().testbed is None
    with pytest.raises(ValueError, match="testbed"):
        Calibration.from_json({"testbed": {"cores": 0}})
    with pytest.raises(ValueError, match="testbed"):
        Calibration.from_json({"testbed": {"cpus": 2}})
    with pytest.raises(ValueError, match="testbed.token_cost"):
        Calibration.from_json({"testbed": {"token_cost": {"kind": "uniform"}}})


def test_only_a_model_of_the_emulation_uses_it(tmp_path):
    """`run --engine simulate` models production: a calibration's testbed is not applied unless
    asked for (`validate` asks)."""
    from sim.engine import simulate

    sc = from_dict({**DOC, "duration": "2m", "fleet": {"clients": 5, "profile": "fixed"}})
    cal = Calibration(testbed=Bed(1, Dist("fixed", 0.5), Dist("fixed", 0.5)))
    plain = simulate(sc, tmp_path / "plain", calibration=cal)
    meta = json.loads((tmp_path / "plain" / "meta.json").read_text())
    assert meta["model"]["testbed"] is None
    simulate(sc, tmp_path / "bed", calibration=cal, testbed=cal.testbed)
    meta = json.loads((tmp_path / "bed" / "meta.json").read_text())
    assert meta["model"]["testbed"]["cores"] == 1
    assert plain["connections"] == 5


def test_cpu_share_tells_the_emulations_cores_from_the_rest_of_the_machine():
    """A process outside the emulation burning a core shows as the rest of the machine's load."""
    import subprocess
    import sys
    import time

    from harness.emulate.selfcheck import CpuShare

    share = CpuShare()
    share.sample([], time.monotonic())
    burner = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 0.6\nwhile time.time() < end: pass"])
    try:
        burner.wait(timeout=30)
    finally:
        burner.kill()
    share.sample([], time.monotonic())
    report = share.report()
    assert report["emulation_cpu_cores"] == 0.0
    assert report["other_cpu_cores"] >= 0.4  # the burner's ~0.6 s of CPU over about as long


def test_validate_gives_the_testbed_the_cores_the_emulation_had(tmp_path):
    from commands.validate import free_cores

    cal = Calibration(testbed=Bed(2, Dist("fixed", 0.001), Dist("fixed", 0.001)))
    runs = []
    for k, other in enumerate((1.2, 0.3, 1.1)):
        (tmp_path / f"r{k}").mkdir()
        (tmp_path / f"r{k}" / "meta.json").write_text(json.dumps({"self_check": {"other_cpu_cores": other}}))
        runs.append(tmp_path / f"r{k}")
    busy, load = free_cores(cal, runs)
    assert load == 1.1 and busy.testbed.cores == 1  # the median run's load, rounded
    quiet, load = free_cores(cal, runs[1:2])
    assert load == 0.3 and quiet.testbed.cores == 2
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "meta.json").write_text(json.dumps({"self_check": {}}))
    assert free_cores(cal, [tmp_path / "old"]) == (cal, None)
