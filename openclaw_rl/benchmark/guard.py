"""The contamination guard: an agent is not scored on markets that it, or anything its weights
came from, touched (``roll.lineage``)."""

from __future__ import annotations

from openclaw_rl.rock.splits import describe, overlap


def contamination(lineage: list[dict], test: dict, private: bool = False) -> list[str]:
    """How ``lineage`` overlaps the ``test`` record, one sentence per record (empty: clean). A record
    of unknown content (a checkpoint without a lineage) overlaps everything. ``private``: the
    sentences name neither side's seeds, which would publish the salted test markets."""
    found = []
    for record in lineage:
        if record["kind"] == "unknown":
            why = record.get("why", "written before lineages existed")  # records stored before they said why
            found.append(f"{record['by']} records no lineage ({why}), so it may have touched any market")
        elif overlap(record, test):
            if private:
                found.append(f"{record['by']} touched the private test markets ({record['use']})")
            else:
                found.append(f"{record['by']} touched {describe(record)} ({record['use']}), which overlaps the test "
                             f"split's {describe(test)}")
    return found
