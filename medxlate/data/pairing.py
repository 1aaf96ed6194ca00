"""Pair source and target series of the same patient (DICOM input of ``prepare``).

Works on any objects with the attributes of :class:`medxlate.io.scan.SeriesInfo` that matter here
(:class:`SeriesLike`). Rules (:class:`~medxlate.config.prepare.PairingConfig`):

* a series qualifies for a role when it is an image series of the role's modality with at least
  ``min_slices`` slices and no scan flag that stops it loading, and its description matches one
  ``include`` pattern (if any are given) and no ``exclude`` pattern;
* the patient is the PatientID, or PatientName + PatientBirthDate when the ID is empty; series with
  neither are reported and left out;
* one pair per patient: the closest study dates within ``date_window_days``, then most source
  slices, then most target slices; a remaining tie is *ambiguous* (picked by SeriesNumber, then
  SeriesInstanceUID, or skipped, by config).

Patients are reported by an opaque label (``P000``...) in an order given by a hash of their series
UIDs, which says nothing about who they are; the id map links labels back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from medxlate.config.prepare import PairingConfig, SeriesRule

__all__ = ["PairingResult", "PatientReport", "SeriesLike", "SeriesPair", "pair_series", "patient_key", "slices"]


class SeriesLike(Protocol):
    """The series attributes pairing reads (see ``medxlate.io.scan.SeriesInfo``)."""

    series_uid: str
    modality: str
    description: str
    study_date: Any
    series_number: Any
    n_instances: int
    is_image: bool
    flags: tuple[str, ...]
    identifiers: Mapping[str, Any]


@dataclass(frozen=True)
class SeriesPair:
    """The chosen source and target series of one patient.

    Attributes:
        patient: Opaque patient label (``P000``...).
        source: Source series.
        target: Target series.
        days: Distance between the study dates in days (``None`` if a date is missing).
        note: Why the choice deserves a look (ambiguous pick), or ``None``.
    """

    patient: str
    source: Any
    target: Any
    days: int | None
    note: str | None = None


@dataclass(frozen=True)
class PatientReport:
    """A patient (or a group of unidentifiable series) left unpaired, and why (no identifiers).

    Attributes:
        patient: Opaque patient label, or ``"unidentified"``.
        problem: What was found, e.g. ``"no MR series qualifies (2 MR series excluded ...)"``.
        series: The patient's series (for the id map only; never printed).
    """

    patient: str
    problem: str
    series: tuple[Any, ...]


@dataclass(frozen=True)
class PairingResult:
    """Pairs, one per patient, and every patient that got none."""

    pairs: tuple[SeriesPair, ...]
    unpaired: tuple[PatientReport, ...]


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def patient_key(series: SeriesLike) -> tuple[str, ...] | None:
    """The patient a series belongs to: ``("id", PatientID)``, ``("name", name, birth date)`` or ``None``."""
    ids = series.identifiers
    patient_id = _text(ids.get("PatientID"))
    if patient_id:
        return ("id", patient_id)
    name, birth = _text(ids.get("PatientName")), _text(ids.get("PatientBirthDate"))
    return ("name", name.upper(), birth) if name and birth else None


def study_date(series: SeriesLike) -> dt.date | None:
    """The series' study date, from a ``date``, ``datetime`` or a ``YYYYMMDD`` string; else ``None``."""
    value = series.study_date
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = re.sub(r"[^0-9]", "", _text(value))
    try:
        return dt.datetime.strptime(text[:8], "%Y%m%d").date() if len(text) >= 8 else None
    except ValueError:
        return None


def slices(series: SeriesLike) -> int:
    """Slices of the series' volume (``n_slices`` when the scan gives it, else ``n_instances``)."""
    n_slices = getattr(series, "n_slices", None)
    return int(n_slices) if n_slices is not None else int(series.n_instances)


def _why_not(series: SeriesLike, rule: SeriesRule, unusable: frozenset[str]) -> str | None:
    """Why ``series`` does not qualify for ``rule`` (``None`` if it does)."""
    description = _text(series.description)
    if not series.is_image:
        return "not an image series"
    blocking = sorted(unusable.intersection(getattr(series, "flags", ()) or ()))
    if blocking:
        return f"flagged {'/'.join(blocking)} (cannot be loaded with these settings)"
    if slices(series) < rule.min_slices:
        return f"fewer than {rule.min_slices} slices"
    if rule.include and not any(re.search(p, description, re.IGNORECASE) for p in rule.include):
        return "description matches no include pattern"
    if any(re.search(p, description, re.IGNORECASE) for p in rule.exclude):
        return "description matches an exclude pattern"
    return None


def _candidates(
    series: Sequence[SeriesLike], rule: SeriesRule, unusable: frozenset[str]
) -> tuple[list[SeriesLike], str]:
    """Qualifying series of ``rule.modality``, and a summary of why the others were dropped."""
    same_modality = [s for s in series if _text(s.modality).upper() == rule.modality]
    chosen = [s for s in same_modality if _why_not(s, rule, unusable) is None]
    reasons: dict[str, int] = defaultdict(int)
    for s in same_modality:
        reason = _why_not(s, rule, unusable)
        if reason is not None:
            reasons[reason] += 1
    dropped = "; ".join(f"{n} {rule.modality} series {why}" for why, n in sorted(reasons.items()))
    return chosen, dropped


def _rank(pair: tuple[SeriesLike, SeriesLike], window: int | None) -> tuple[int, int, int] | None:
    source, target = pair
    a, b = study_date(source), study_date(target)
    days = abs((b - a).days) if a is not None and b is not None else None
    if window is not None and (days is None or days > window):
        return None
    return (days if days is not None else 10**6, -slices(source), -slices(target))


def _order(series: SeriesLike) -> tuple[int, str]:
    try:
        number = int(series.series_number)
    except (TypeError, ValueError):
        number = 10**9
    return (number, _text(series.series_uid))


def _pair_patient(
    label: str, series: list[SeriesLike], cfg: PairingConfig, unusable: frozenset[str]
) -> SeriesPair | PatientReport:
    sources, dropped_s = _candidates(series, cfg.source, unusable)
    targets, dropped_t = _candidates(series, cfg.target, unusable)
    for role, found, dropped in (("source", sources, dropped_s), ("target", targets, dropped_t)):
        if not found:
            modality = getattr(cfg, role).modality
            detail = f" ({dropped})" if dropped else ""
            return PatientReport(label, f"no {modality} series qualifies as {role}{detail}", tuple(series))
    ranked = [(rank, s, t) for s in sources for t in targets if (rank := _rank((s, t), cfg.date_window_days))]
    if not ranked:
        return PatientReport(
            label,
            f"no {cfg.source.modality}/{cfg.target.modality} pair within {cfg.date_window_days} days "
            f"({len(sources)} {cfg.source.modality} and {len(targets)} {cfg.target.modality} candidates; "
            "or a StudyDate is missing)",
            tuple(series),
        )
    best = min(rank for rank, _, _ in ranked)
    ties = sorted(((s, t) for rank, s, t in ranked if rank == best), key=lambda p: (_order(p[0]), _order(p[1])))
    note = None
    if len(ties) > 1:
        if cfg.ambiguous == "skip":
            return PatientReport(label, f"ambiguous: {len(ties)} equally good pairs (skipped by config)", tuple(series))
        note = f"ambiguous: {len(ties)} equally good pairs; picked the lowest SeriesNumber"
    days = best[0] if best[0] != 10**6 else None
    return SeriesPair(patient=label, source=ties[0][0], target=ties[0][1], days=days, note=note)


def _label_order(series: Sequence[SeriesLike]) -> str:
    uids = "\n".join(sorted(_text(s.series_uid) for s in series))
    return hashlib.sha256(uids.encode("utf-8")).hexdigest()


def pair_series(series: Sequence[SeriesLike], cfg: PairingConfig, unusable_flags: Iterable[str] = ()) -> PairingResult:
    """Group series by patient and choose one source/target pair per patient.

    Args:
        series: Every series found by the scan (non-images included; they are filtered here).
        cfg: Pairing rules.
        unusable_flags: Scan flags that make a series impossible to load (e.g. ``mosaic``, or
            ``gap`` when irregular series are not resampled); such series are not candidates.

    Returns:
        The pairs (ordered by patient label) and the unpaired patients with the reason.
    """
    groups: dict[tuple[str, ...], list[SeriesLike]] = defaultdict(list)
    unidentified: list[SeriesLike] = []
    for item in series:
        key = patient_key(item)
        (groups[key] if key is not None else unidentified).append(item)
    ordered = sorted(groups.values(), key=_label_order)
    width = max(3, len(str(len(ordered) - 1)))
    pairs: list[SeriesPair] = []
    unpaired: list[PatientReport] = []
    for number, members in enumerate(ordered):
        outcome = _pair_patient(f"P{number:0{width}d}", members, cfg, frozenset(unusable_flags))
        (pairs if isinstance(outcome, SeriesPair) else unpaired).append(outcome)
    images = [s for s in unidentified if s.is_image]
    if images:
        unpaired.append(
            PatientReport(
                "unidentified",
                f"{len(images)} image series have neither PatientID nor PatientName + PatientBirthDate",
                tuple(images),
            )
        )
    return PairingResult(pairs=tuple(pairs), unpaired=tuple(unpaired))
