"""Which dataset role a task reads as its source and which as its target."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from medxlate.data.build import is_label_role
from medxlate.data.dataset import Case, Dataset
from medxlate.errors import InputDataError
from medxlate.tasks import Task


def orient_dataset(dataset: Dataset, task: Task) -> Dataset:
    """The dataset with its roles as ``task`` reads them.

    A prepared dataset records which modality each role holds. When the task's source modality is
    the dataset's target (e.g. ``mr2ct`` on a CT -> MR dataset) the source and target files swap;
    the mask and label maps (roles naming a mask or labels, e.g. ``labels``) belong to the grid and
    stay; other roles (e.g. a noise-free MR) are dropped then, as they belong to the other direction.

    Raises:
        InputDataError: if the dataset's modalities are not the task's (in either order).
    """
    have = (dataset.source_modality.upper(), dataset.target_modality.upper())
    want = (task.source_modality, task.target_modality)
    if have == want:
        return dataset
    if have != want[::-1]:
        raise InputDataError(
            f"{dataset.root}: dataset holds source {have[0]} and target {have[1]}; task '{task.name}' "
            f"translates {want[0]} -> {want[1]} (choose a task for these modalities with data.task)"
        )
    cases = tuple(replace(case, files=_swapped(case)) for case in dataset.cases)
    return replace(dataset, source_modality=want[0], target_modality=want[1], cases=cases)


def _swapped(case: Case) -> dict[str, Path]:
    files = {"source": case.target, "target": case.source}
    files.update({role: path for role, path in case.files.items() if is_label_role(role)})
    return files
