"""Claims on things only one process may drive at a time (the simulator's instruments, the
strategy runner's strategies): a PostgreSQL advisory lock per thing on the process's connection,
held until the process (or that connection) ends; on SQLite (embedded mode), a file lock."""

from __future__ import annotations

import fcntl
import hashlib
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from django.db import connection


class AdvisoryClaims:
    """The ids of one kind of thing this process drives. `lock_class` is the advisory lock's
    first key (one per kind), the id its second; `name` names the lock files."""

    def __init__(self, lock_class: int, name: str) -> None:
        self.lock_class = lock_class
        self.name = name
        self._held: set[int] = set()
        self._files: dict[int, IO[Any]] = {}
        self._session: object | None = None

    def claim(self, ids: Iterable[int]) -> set[int]:
        """Try to take every id not held yet; the ids held now."""
        if connection.vendor == "postgresql":
            connection.ensure_connection()
            if self._session is not connection.connection:  # a new connection holds none of our locks
                self._held.clear()
                self._session = connection.connection
            for thing in set(ids) - self._held:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [self.lock_class, thing])
                    if cursor.fetchone()[0]:
                        self._held.add(thing)
        else:
            for thing in set(ids) - self._held:
                if self._lock_file(thing):
                    self._held.add(thing)
        return set(self._held)

    def let_go(self, thing: int) -> None:
        """Release one id (no longer driven here)."""
        if thing not in self._held:
            return
        self._held.discard(thing)
        if connection.vendor == "postgresql" and self._session is connection.connection:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [self.lock_class, thing])
        handle = self._files.pop(thing, None)
        if handle is not None:
            handle.close()

    def _lock_file(self, thing: int) -> bool:
        database = hashlib.sha256(str(connection.settings_dict["NAME"]).encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"tradeport-{self.name}-{database}-{thing}.lock"
        handle = path.open("a")  # noqa: SIM115 - held open while the lock is held
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._files[thing] = handle
        return True

    def release(self) -> None:
        if connection.vendor == "postgresql" and self._held and self._session is connection.connection:
            with connection.cursor() as cursor:
                for thing in self._held:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [self.lock_class, thing])
        for handle in self._files.values():
            handle.close()
        self._held.clear()
        self._files.clear()
