"""What the engine tells about a job or a worker, the same on both backends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

JobStatus = Literal["waiting", "running", "succeeded", "failed"]


@dataclass(frozen=True, slots=True)
class JobInfo:
    id: int
    task: str
    status: JobStatus
    #: Runs started so far (0 while it waits for its first).
    attempts: int

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "task": self.task, "status": self.status, "attempts": self.attempts}


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: int
    heartbeat_age: float
