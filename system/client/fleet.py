"""Many reference clients on one event loop: seeded, staggered, chatting, and bounded in time.

What the `client` command runs; the harness may use it too or drive `ClientDriver`s itself.
Each client gets its own `random.Random` derived from the fleet seed and its index, so
a fleet's decisions do not depend on how the clients interleave.
"""
from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import aiohttp

from system.client.config import ClientConfig
from system.client.credentials import conversation_id, provision
from system.client.driver import ClientDriver, Clock, DriverOptions, Endpoints, OnRecord
from system.client.policy import ClientPolicy

# what the clients type; the echo agent answers anything, the real-estate agent these
MESSAGES = (
    "two-bed flat in Leeds under 1200 a month",
    "any studios near the station for next week?",
    "show me houses with a garden, 3 bedrooms",
    "short let in Manchester from the 3rd to the 10th",
)


@dataclass(frozen=True)
class FleetSpec:
    """Durations are on the driver clock (see `Clock`)."""

    clients: int
    config: ClientConfig
    duration: float
    seed: int = 0
    message_every: float | None = None  # mean gap between a client's user messages; None: silent
    ramp: float = 0.0                   # starts spread uniformly over this long
    prefix: str = "c"

    def __post_init__(self) -> None:
        if self.clients < 1:
            raise ValueError(f"FleetSpec.clients: expected at least 1, got {self.clients}")
        if not self.duration > 0:
            raise ValueError(f"FleetSpec.duration: expected > 0 seconds, got {self.duration}")
        if self.message_every is not None and not self.message_every > 0:
            raise ValueError(f"FleetSpec.message_every: expected > 0 seconds, got {self.message_every}")
        if not 0 <= self.ramp <= self.duration:
            raise ValueError(f"FleetSpec.ramp: expected 0..duration ({self.duration}), got {self.ramp}")


def client_rng(seed: int, index: int) -> random.Random:
    return random.Random(f"stormbench-client:{seed}:{index}")


async def run_fleet(spec: FleetSpec, endpoints: Endpoints, admin_key: str, *, clock: Clock | None = None,
                    on_record: OnRecord | None = None, options: DriverOptions = DriverOptions(),
                    on_drivers=None) -> list[ClientDriver]:
    """Provision the fleet's users with `admin_key`, then run it until `spec.duration` on the
    clock; returns the drivers (for their counters). Each client has its own user, secret and
    unguessable conversation."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        ids = [f"{spec.prefix}{i}" for i in range(spec.clients)]
        secrets = await provision(http, endpoints.http_url, admin_key, ids)
        clock = clock or Clock.start()
        drivers = []
        for i, client_id in enumerate(ids):
            policy = ClientPolicy(spec.config, client_rng(spec.seed, i), client_id,
                                  conversation=conversation_id(client_id))
            drivers.append(ClientDriver(policy, endpoints, http, clock, secret=secrets[client_id],
                                        on_record=on_record, options=options))
        if on_drivers is not None:
            on_drivers(drivers)
        starts = random.Random(f"stormbench-fleet:{spec.seed}")
        await asyncio.gather(*(_client(d, clock, spec, starts.uniform(0, spec.ramp), client_rng(spec.seed, -1 - i))
                               for i, d in enumerate(drivers)))
    return drivers


async def _client(driver: ClientDriver, clock: Clock, spec: FleetSpec, start_at: float, rng: random.Random) -> None:
    await _sleep_until(clock, start_at)
    chatter = None
    if spec.message_every is not None:
        chatter = asyncio.get_running_loop().create_task(_chat(driver, clock, spec, rng))
    try:
        await driver.run(until=spec.duration)
    finally:
        if chatter is not None:
            chatter.cancel()


async def _chat(driver: ClientDriver, clock: Clock, spec: FleetSpec, rng: random.Random) -> None:
    while True:
        at = clock.now() + rng.expovariate(1.0 / spec.message_every)
        if at >= spec.duration:
            return
        await _sleep_until(clock, at)
        driver.send_user_message(rng.choice(MESSAGES))


async def _sleep_until(clock: Clock, at: float) -> None:
    await asyncio.sleep(max(0.0, clock.loop_time(at) - asyncio.get_running_loop().time()))
