"""The worker's waiting jobs in a fair order: owners (page sessions) take turns.

Not thread-safe on its own: the worker calls it with its lock held.
"""

from __future__ import annotations

from lab.runs.jobs import Job

# Owners take turns of this many jobs, the two runs of one comparison, so one visitor
# cannot queue ten jobs ahead of everyone else.
TURN = 2


class FairQueue:
    """Waiting jobs; `ordered()` is the order they will train in, `take()` starts the next."""

    def __init__(self) -> None:
        self._jobs: list[Job] = []  # in the order they were asked for
        self._served: dict[str | None, int] = {}  # owner -> when it last had a job start
        self._turns = 0
        self._turn_owner: str | None = None  # whose turn is running, and how many jobs it has left
        self._turn_left = 0

    def __len__(self) -> int:
        return len(self._jobs)

    def append(self, job: Job) -> None:
        self._jobs.append(job)

    def remove(self, job: Job) -> None:
        self._jobs.remove(job)

    def clear(self) -> list[Job]:
        """Empty the queue; returns the jobs that were waiting."""
        jobs, self._jobs = self._jobs, []
        return jobs

    def waiting_of(self, owner: str | None) -> int:
        """How many jobs `owner` asked for first and are still waiting."""
        return sum(1 for job in self._jobs if owner is not None and job.first_owner == owner)

    def position(self, job: Job) -> int:
        """1 for the job that trains next, 2 for the one after it, ..."""
        return self.ordered().index(job) + 1

    def take(self) -> Job:
        """Remove and return the job that trains next (the queue must not be empty)."""
        job = self.ordered()[0]
        owner = job.first_owner
        if owner == self._turn_owner and self._turn_left > 0:
            self._turn_left -= 1
        else:
            self._turn_owner, self._turn_left = owner, TURN - 1
        self._turns += 1
        self._served[owner] = self._turns
        self._jobs.remove(job)
        return job

    def ordered(self) -> list[Job]:
        """The waiting jobs in the order they will train.

        Owners take turns of `TURN` jobs (one comparison), the owner served longest ago
        first, and a turn that has started is finished first. Each owner's jobs keep the
        order they were asked in; with one owner this is plain FIFO.
        """
        by_owner: dict[str | None, list[Job]] = {}
        for job in self._jobs:
            by_owner.setdefault(job.first_owner, []).append(job)
        order: list[Job] = []
        current = by_owner.get(self._turn_owner, [])
        order += current[: self._turn_left]
        del current[: self._turn_left]
        owners = sorted(by_owner, key=lambda owner: self._served.get(owner, 0))  # stable: ties keep asking order
        while any(by_owner.values()):
            for owner in owners:
                order += by_owner[owner][:TURN]
                del by_owner[owner][:TURN]
        return order
