"""MariaDB GTID positions, pure: parse `0-1-1050,1-2-7`, compare them, and count the errant transactions of a former
primary — what it wrote after the fork that the promoted replica never received.

MariaDB keeps one GTID per replication domain (`domain-server-seq`); with gtid_strict_mode the sequence numbers of a
domain only grow, whoever writes. So when the replica was promoted having applied `0-1-1047` from the old primary
(its gtid_slave_pos at promotion) and the old primary's binlog ends at `0-1-1050`, the old primary holds exactly
three transactions the new one lacks: 0-1-1048, 0-1-1049, 0-1-1050 — each drill write being one transaction, the
lost acknowledged writes must be among them. (MySQL computes the same with GTID_SUBTRACT on the server.)
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_GTID_RE = re.compile(r"(\d+)-(\d+)-(\d+)")


@dataclass(frozen=True, order=True)
class Gtid:
    domain: int
    server: int
    seq: int

    def __str__(self) -> str:
        return f"{self.domain}-{self.server}-{self.seq}"


def parse_position(text: str | None) -> dict[int, Gtid]:
    """`0-1-1050,1-2-7` → {domain: Gtid}. Empty or None → {}. Raises ValueError on anything else."""
    out: dict[int, Gtid] = {}
    for part in (text or "").replace("\n", "").split(","):
        part = part.strip()
        if not part:
            continue
        m = _GTID_RE.fullmatch(part)
        if not m:
            raise ValueError(f"not a MariaDB GTID position: {part[:60]!r}")
        g = Gtid(*(int(x) for x in m.groups()))
        if g.domain in out:
            raise ValueError(f"two GTIDs for domain {g.domain} in one position")
        out[g.domain] = g
    return out


def format_position(pos: dict[int, Gtid]) -> str:
    return ",".join(str(pos[d]) for d in sorted(pos))


def reached(pos: dict[int, Gtid], target: dict[int, Gtid]) -> bool:
    """Has a server at `pos` applied everything up to `target` (every domain's seq at least the target's)?"""
    return all(d in pos and pos[d].seq >= g.seq for d, g in target.items())


def errant(old_binlog: dict[int, Gtid], fork: dict[int, Gtid]) -> list[Gtid]:
    """The transactions of the former primary (its binlog position `old_binlog`) after the `fork` (what the promoted
    replica had applied from it): per domain, the sequence numbers after the fork's, up to the old primary's last.
    Bounded: a gap of more than 1 000 000 is refused (positions from different histories)."""
    out: list[Gtid] = []
    for d, last in sorted(old_binlog.items()):
        start = fork[d].seq if d in fork else 0
        if last.seq <= start:
            continue
        if last.seq - start > 1_000_000:
            raise ValueError(f"domain {d}: {last.seq - start} transactions after the fork — not one history")
        out += [Gtid(d, last.server, s) for s in range(start + 1, last.seq + 1)]
    return out
