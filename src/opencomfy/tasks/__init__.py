"""Background tasks (downloads, exports, seeding): rows in `tasks`, run in-process by TaskService."""

from opencomfy.tasks.service import TaskContext, TaskFailed, TaskService

__all__ = ["TaskContext", "TaskFailed", "TaskService"]
