"""Seeded randomness: what the world's code draws at random comes from the test's seed."""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import json
import random
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from inner_pytest import INI

from pytest_ntinvariants.sim import World, entropy, patching

T = TypeVar("T")

PROBE = """
import random
from random import choice, randrange

def draws():
    return [random.random(), choice(range(1000)), randrange(1000), random.Random().random()]

def seeded(seed):
    return random.Random(seed).random()
"""


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """A throwaway module drawing at random in both import styles, patched for worlds."""
    (tmp_path / "ntinv_dice_probe.py").write_text(textwrap.dedent(PROBE))
    monkeypatch.syspath_prepend(str(tmp_path))
    patching.uninstall()
    try:
        module = importlib.import_module("ntinv_dice_probe")
        patching.install(["ntinv_dice_probe"])
        yield module
    finally:
        patching.uninstall()
        sys.modules.pop("ntinv_dice_probe", None)


def in_world(seed: int, fn: Callable[[], T]) -> T:
    """Call ``fn`` in a fresh context with the generator of a world seeded ``seed``."""

    def inner() -> T:
        entropy.activate(entropy.seeded(seed))
        return fn()

    return contextvars.copy_context().run(inner)


def test_a_world_draws_from_its_seed_in_every_import_style(probe: types.ModuleType) -> None:
    assert probe.random is entropy.MODULE
    first = in_world(7, probe.draws)
    assert in_world(7, probe.draws) == first
    assert in_world(8, probe.draws) != first
    # A generator given its own seed keeps it.
    assert in_world(7, lambda: probe.seeded(3)) == random.Random(3).random()


def test_outside_a_world_the_shared_generator_draws(probe: types.ModuleType) -> None:
    state = random.getstate()
    try:
        random.seed(11)
        expected = random.random()
        random.seed(11)
        assert probe.draws()[0] == expected
        assert entropy.active() is None
    finally:
        random.setstate(state)


def test_a_world_does_not_move_the_shared_generator(probe: types.ModuleType) -> None:
    state = random.getstate()
    try:
        in_world(7, probe.draws)
        assert random.getstate() == state
    finally:
        random.setstate(state)


def test_kopf_chooses_among_credentials_with_the_worlds_generator() -> None:
    # kopf picks one of several equally preferred logins with random.choice: which one
    # decides the connection a request takes, and the order the server sees requests in.
    credentials = importlib.import_module("kopf._cogs.structs.credentials")
    patching.uninstall()
    try:
        patching.install(["kopf"])
        assert credentials.random is entropy.MODULE
    finally:
        patching.uninstall()
    assert credentials.random is random


def job_generator(seed: int) -> tuple[float, bool]:
    """Start a world seeded ``seed``, run one thread job on its loop, and return the job's
    first draw and whether its generator was the world's own."""
    world = World(seed).start()
    try:

        def start_job() -> asyncio.Future[tuple[random.Random | None, random.Random | None]]:
            own = entropy.active()
            return world.loop.run_in_executor(None, lambda: (entropy.active(), own))

        # In the context the world's actors run in (a copy, as each actor gets); call()
        # returns once the job has run and its result is held for the engine to release.
        job = world.call(lambda: world.loop.context.copy().run(start_job))
        world.run_until(job.done)
        rng, own = job.result()
        assert rng is not None and own is not None
        return rng.random(), rng is own
    finally:
        world.stop()


def test_a_thread_job_draws_from_its_own_generator_seeded_by_the_world() -> None:
    # Its own: the loop runs on while the job's thread runs, and both may draw.
    first, shared = job_generator(3)
    assert not shared
    assert job_generator(3)[0] == first
    assert job_generator(4)[0] != first


DICE_TEST = """
import json
import pytest
from operators_fixtures import dice, gadgets

@pytest.fixture
def ntinv_operator(ntinv_apiserver):
    ntinv_apiserver.apply(gadgets.GADGET_CRD)
    return dice.make_registry

@pytest.mark.ntinv_replicas(1)
def test_roll(ntinv, request):
    ntinv.wait_watching("gadgets")
    ntinv.apply(gadgets.gadget("g1"))
    done = ntinv.wait_for(
        gadgets.API_VERSION, "Gadget", "g1", lambda o: "draws" in o.get("status", {})
    )
    seed = request.config.getoption("ntinv_seed")
    with open(f"draws-{seed}.json", "a") as out:
        out.write(json.dumps(done["status"]["draws"]) + "\\n")
"""


def test_a_kopf_replicas_draws_replay_with_the_seed(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_dice=DICE_TEST)
    pytester.syspathinsert(Path(__file__).parent)  # operators_fixtures
    for seed in (5, 5, 6):
        pytester.inline_run(f"--ntinv-seed={seed}").assertoutcome(passed=1)
    five = [json.loads(line) for line in (pytester.path / "draws-5.json").read_text().splitlines()]
    [six] = [json.loads(line) for line in (pytester.path / "draws-6.json").read_text().splitlines()]
    assert len(five) == 2 and five[0] == five[1], five
    assert all(six[k] != five[0][k] for k in six), (six, five[0])
