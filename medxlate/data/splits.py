"""Train/val/test assignment by patient, deterministic in the seed and the data's content.

Patients (groups) are ranked by ``sha256(seed, content key)`` where the content key is a hash of
the group's input files, so the ranking is reproducible, changes with the seed, and carries no
identifier. The first ``n_test`` groups go to test, the next ``n_val`` to val, the rest to train.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from medxlate.config.prepare import SplitConfig

__all__ = ["assign_splits", "split_counts", "threshold_splits"]


def split_counts(n_groups: int, cfg: SplitConfig) -> tuple[int, int]:
    """How many groups go to (test, val).

    Each positive fraction gets at least one group when at least one group stays for training;
    training keeps at least one group whenever there is one.

    Args:
        n_groups: Number of groups to assign.
        cfg: Fractions.

    Returns:
        ``(n_test, n_val)``.
    """
    n_test = round(cfg.test_fraction * n_groups)
    n_val = round(cfg.val_fraction * n_groups)
    if cfg.val_fraction > 0 and n_val == 0 and n_groups >= 2:
        n_val = 1
    if cfg.test_fraction > 0 and n_test == 0 and n_groups - n_val >= 2:
        n_test = 1
    while n_groups > 0 and n_test + n_val >= n_groups:  # keep one group for training
        if n_test > 0:
            n_test -= 1
        else:
            n_val -= 1
    return n_test, n_val


def assign_splits(
    groups: Mapping[str, str],
    content: Mapping[str, str],
    cfg: SplitConfig,
    explicit: Mapping[str, str | None] | None = None,
) -> dict[str, str]:
    """Assign each case a split, keeping all cases of a group (patient) together.

    Args:
        groups: Case id -> group key (in memory only; may be identifying, never written).
        content: Case id -> content hash of its inputs.
        cfg: Fractions and seed.
        explicit: Case id -> split given by the input (kept as is), or ``None``.

    Returns:
        Case id -> ``train``, ``val`` or ``test``.
    """
    explicit = explicit or {}
    splits = {case: split for case, split in explicit.items() if split}
    members: dict[str, list[str]] = {}
    for case, group in groups.items():
        if case not in splits:
            members.setdefault(group, []).append(case)

    def rank(group: str) -> str:
        key = min(content[case] for case in members[group])
        return hashlib.sha256(f"{cfg.seed}:{key}".encode()).hexdigest()

    ordered = sorted(members, key=rank)
    n_test, n_val = split_counts(len(ordered), cfg)
    for position, group in enumerate(ordered):
        split = "test" if position < n_test else "val" if position < n_test + n_val else "train"
        splits.update(dict.fromkeys(members[group], split))
    return splits


def threshold_splits(identities: Sequence[str], val_fraction: float, seed: int) -> list[str]:
    """Assign each item ``train`` or ``val`` from its own identity alone (stable when items are added).

    Item ``i`` goes to ``val`` when ``sha256(f"{seed}:{identities[i]}")``, read as a number in
    [0, 1), is below ``val_fraction``; equal identities share a split. So that neither split is
    empty (possible in tiny folders only), the ``train`` item with the smallest number moves to
    ``val`` if ``val`` is empty, or the ``val`` item with the largest number to ``train``.

    Args:
        identities: One content identity per item (kept in memory; may be identifying).
        val_fraction: Expected share of ``val``, in (0, 1).
        seed: Seed of the assignment.

    Returns:
        ``train`` or ``val`` per item, in order.

    Raises:
        ValueError: if there are fewer than two items or the fraction is not in (0, 1).
    """
    if len(identities) < 2 or not 0.0 < val_fraction < 1.0:
        raise ValueError(f"need two items and a fraction in (0, 1); got {len(identities)} and {val_fraction}")
    scores = [int(hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()[:16], 16) / 16**16 for i in identities]
    splits = ["val" if score < val_fraction else "train" for score in scores]
    if "val" not in splits:
        splits[min(range(len(scores)), key=scores.__getitem__)] = "val"
    elif "train" not in splits:
        splits[max(range(len(scores)), key=scores.__getitem__)] = "train"
    return splits
