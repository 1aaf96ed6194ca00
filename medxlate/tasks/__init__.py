"""Translation tasks (CT -> MR, MR -> CT): roles, modalities, normalisers, geometry rule.

:func:`medxlate.data.roles.orient_dataset` maps a prepared dataset's roles onto a task's.
"""

from medxlate.tasks.task import DEFAULT_TASK, NORMALISERS, TASKS, Normaliser, Task, get_task

__all__ = ["DEFAULT_TASK", "NORMALISERS", "TASKS", "Normaliser", "Task", "get_task"]
