"""Tasks as registered objects: `Task`, `register_task`, `get_task`, `list_tasks`; the built-in
`mg`, `emotion` and `online` register from their own files (imported here, in this order)."""
from .base import (ITEMS, LOSSES, SubmissionFormat, Task, TaskNotReadyError, UnknownTaskError, get_task, list_tasks,
                   register_task, registered_tasks)
from . import mg, emotion, online  # noqa: F401,I001

__all__ = ["ITEMS", "LOSSES", "SubmissionFormat", "Task", "TaskNotReadyError", "UnknownTaskError", "get_task",
           "list_tasks", "register_task", "registered_tasks"]
