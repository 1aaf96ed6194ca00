"""Train/val/test assignment by patient, deterministic in the seed and the data's content.

Patients (groups) are ranked by ``sha256(seed, content key)`` where the content key is a hash of
the group's input files, so the ranking is reproducible, changes with the seed, and carries no
identifier. The first ``n_test`` groups go to test, the next ``n_val`` to val, the rest to train.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from medxlate.config.prepare import SplitConfig

__all__ = ["assign_splits", "split_counts"]


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
