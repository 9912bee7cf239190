"""ModelEnvironment keeps SimPy's order: its plain calls interleave with ordinary SimPy events
exactly as Timeouts would, and `run(until=t)` stops where SimPy's own would."""
from __future__ import annotations

import pytest
import simpy
from hypothesis import given, settings, strategies as st

from sim.schedule import WINDOW_S, ModelEnvironment


def trace(env: simpy.Environment, schedule_call) -> list[tuple[float, str]]:
    """The same little model on either environment: calls and a SimPy process, ties included."""
    seen: list[tuple[float, str]] = []

    def note(name: str) -> None:
        seen.append((env.now, name))

    def proc():
        note("proc-start")
        yield env.timeout(1.0)
        note("proc-1")
        schedule_call(0.0, note, "from-proc")
        yield env.timeout(1.0)
        note("proc-2")

    schedule_call(1.0, note, "a")
    env.process(proc())
    schedule_call(1.0, note, "b")
    schedule_call(-5.0, note, "negative delay runs now")
    schedule_call(2.0, note, "c")
    for until in (1.0, 2.0, 3.0):  # chunked, as World.run does
        env.run(until=until)
        seen.append((env.now, f"stop {until:g}"))
    return seen


def test_calls_interleave_with_simpy_events_as_timeouts_would():
    plain = simpy.Environment()

    def with_timeouts(delay, fn, *args):
        plain.timeout(max(delay, 0.0)).callbacks.append(lambda _e: fn(*args))

    model = ModelEnvironment()
    expected = trace(plain, with_timeouts)
    assert trace(model, model.call_in) == expected
    # ties at 1 s: the stop first (URGENT), then in scheduling order (the process scheduled its timeout last)
    assert [name for t, name in expected if t == 1.0] == ["stop 1", "a", "b", "proc-1", "from-proc"]


def test_run_until_refuses_the_past_and_step_runs_one_call():
    env = ModelEnvironment()
    calls: list[float] = []
    env.call_in(2.0, lambda: calls.append(env.now))
    env.run(until=1.0)
    with pytest.raises(ValueError, match="must be greater"):
        env.run(until=0.5)
    env.step()
    assert calls == [2.0] and env.now == 2.0
    with pytest.raises(simpy.core.EmptySchedule):
        env.step()


@settings(max_examples=150, deadline=None)
@given(delays=st.lists(st.sampled_from([0.0, 0.5, 1.0, 15.999, 16.0, 16.5, 31.0, 32.0, 47.25, 100.0, 300.0]),
                       min_size=1, max_size=40),
       children=st.lists(st.sampled_from([0.0, 3.0, 16.0, 20.0, 64.0]), max_size=40),
       stops=st.lists(st.integers(2, 1600).map(lambda k: k / 4), min_size=1, max_size=6),  # exact, as SimPy stops at
       # now + (until - now)
       process_wait=st.sampled_from([5.0, 16.0, 40.0]))
def test_calls_far_ahead_wait_in_windows_and_still_run_in_simpys_order(delays, children, stops, process_wait):
    """Calls due beyond the current window wait outside the heap (`WINDOW_S`); whatever the delays
    (on and across window boundaries, ties), calls scheduled by calls, a SimPy process and chunked
    runs, the order and the times are those of SimPy's Timeouts."""
    def trace(env: simpy.Environment, schedule_call) -> list[tuple[float, str]]:
        seen: list[tuple[float, str]] = []
        spawn = iter(children)

        def note(name: str) -> None:
            seen.append((env.now, name))
            child = next(spawn, None)
            if child is not None:
                schedule_call(child, note, f"{name}+{child:g}")

        def proc():
            for k in range(4):
                yield env.timeout(process_wait)
                seen.append((env.now, f"proc-{k}"))

        env.process(proc())
        for k, delay in enumerate(delays):
            schedule_call(delay, note, f"c{k}")
        for until in sorted(set(stops)):
            env.run(until=until)
            seen.append((env.now, f"stop {until:g}"))
        return seen

    plain = simpy.Environment()

    def with_timeouts(delay, fn, *args):
        plain.timeout(max(delay, 0.0)).callbacks.append(lambda _e: fn(*args))

    model = ModelEnvironment()
    assert trace(model, model.call_in) == trace(plain, with_timeouts)
    assert WINDOW_S == 16.0  # the boundaries the sampled delays straddle
