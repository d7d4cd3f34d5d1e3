"""Replay tokens: one exploration run, written down so that it can be run again.

A token holds the run's seed (the server's uids and generated names, the perturbation
rules' own draws, what the world's code draws at random), its schedule of perturbations
as explicit steps, the engine's decisions (the index chosen at each step with more than
one candidate), and the digest of the ledger the run wrote, which a replay must write
again (the plugin says so when it does not). Replaying it needs neither the code that
drew the schedule nor the strategy that chose the steps, so a token keeps reproducing a
failure after either changes. ``--ntinv-replay`` takes one (or a plain seed, which draws
again).

On the wire: ``ntv1-`` and the URL-safe base64 of zlib-compressed JSON.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .perturb.schedule import Schedule, Step

__all__ = ["ReplayToken"]

_PREFIX = "ntv1-"
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class ReplayToken:
    """One run: ``seed``, the schedule's ``steps``, the engine's ``decisions`` and the
    ``digest`` of its ledger ("" when not known: the plugin's own runs)."""

    seed: int
    steps: tuple[Step, ...] = ()
    decisions: tuple[int, ...] = ()
    digest: str = ""

    @classmethod
    def of(cls, schedule: Schedule, decisions: Sequence[int], digest: str = "") -> ReplayToken:
        """The token of a run of ``schedule`` that made ``decisions`` and wrote a ledger
        with ``digest``."""
        return cls(schedule.seed, schedule.steps, tuple(decisions), digest)

    @property
    def schedule(self) -> Schedule:
        """The run's schedule of perturbations."""
        return Schedule(self.seed, self.steps)

    def encode(self) -> str:
        """``ntv1-...``: short enough for a command line."""
        doc = {
            "seed": self.seed,
            "steps": [[s.kind, s.identity, [list(p) for p in s.params]] for s in self.steps],
            "decisions": list(self.decisions),
        }
        if self.digest:
            doc["digest"] = self.digest
        packed = zlib.compress(orjson.dumps(doc), 9)
        return _PREFIX + base64.urlsafe_b64encode(packed).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> ReplayToken:
        """Read a token; ValueError saying what is wrong with it."""
        if not text.startswith(_PREFIX):
            raise ValueError(f"a replay token starts with {_PREFIX!r}")
        body = text[len(_PREFIX) :]
        try:
            packed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            doc = orjson.loads(zlib.decompress(packed))
            seed = doc["seed"]
            steps = tuple(
                Step(str(kind), str(identity), tuple((str(k), v) for k, v in params))
                for kind, identity, params in doc["steps"]
            )
            decisions = tuple(doc["decisions"])
            digest = doc.get("digest", "")
        except (binascii.Error, zlib.error, orjson.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"not a replay token (cut short or mistyped?): {e}") from None
        if not _is_index(seed) or not all(_is_index(d) for d in decisions):
            raise ValueError("not a replay token: its seed and decisions must be integers >= 0")
        if not isinstance(digest, str) or not all(c in _HEX for c in digest):
            raise ValueError("not a replay token: its digest must be hexadecimal")
        return cls(seed, steps, decisions, digest)


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
