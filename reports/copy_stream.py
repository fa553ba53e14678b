"""The reader of a CSV export on PostgreSQL, run as its own small process by `reports.exports`:
`python -m reports.copy_stream`. It imports psycopg and the standard library only (no Django), so
the process moving the rows stays around a third of a Django worker's size whatever their count.

Why a process of its own: it has its own connection, so the whole export is one
`COPY (SELECT …) TO STDOUT` over one snapshot of the database, while the worker's connection stays
free to report progress and to learn of a cancel; a cancel or a time limit ends the reader at once
(the worker kills it), and a worker that dies takes its reader with it (its stdin closes).

The conversation, one JSON object per line:

- stdin: `{"conninfo", "password", "statement", "path"}`, then nothing until it closes;
- stdout: `{"rows": n}` every `REPORT_SECONDS` while the rows flow (the rows written so far), then
  `{"done": rows, "peak_rss_kb": its peak resident set}`, or `{"error": message, "class": psycopg's error class name,
  "connection_lost": bool}` and exit status 1.

The statement's output is appended to `path` (the worker has written the CSV header there).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

import psycopg

#: How often the rows written so far are reported while the COPY runs.
REPORT_SECONDS = 0.25
STDIN = 0
#: Bytes buffered before a write to the file.
WRITE_BUFFER = 1 << 20


class _Reporter:
    """Says the row count every REPORT_SECONDS from a thread of its own (the main thread spends
    its time in libpq, which lets go of the GIL), and says the last word once."""

    def __init__(self) -> None:
        self.rows = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(REPORT_SECONDS):
            self.say({"rows": self.rows})

    def say(self, message: dict[str, Any]) -> None:
        with self._lock:
            sys.stdout.write(json.dumps(message) + "\n")
            sys.stdout.flush()

    def finish(self, message: dict[str, Any]) -> None:
        self._stopped.set()
        self._thread.join()
        self.say(message)


def _leave_with_parent() -> None:
    """The worker holds our stdin open for as long as it waits for us: at its end, end too. (The
    file descriptor itself is read: a thread blocked in `sys.stdin` would hold its lock, which the
    interpreter needs at its normal exit.)"""
    while os.read(STDIN, 1 << 12):
        pass
    os._exit(2)


def _first_line() -> bytes:
    """The order, read byte by byte from the descriptor (nothing read past its line is lost)."""
    line = bytearray()
    while not line.endswith(b"\n"):
        byte = os.read(STDIN, 1)
        if not byte:
            break
        line += byte
    return bytes(line)


def copy_to_file(order: dict[str, Any], reporter: _Reporter) -> int:
    """Run the order's COPY statement and append its output to the order's path; the rows."""
    with (
        psycopg.connect(
            order["conninfo"],
            password=order.get("password"),
            application_name=f"tradeport export {os.getpid()}",
        ) as connection,
        connection.cursor() as cursor,
        open(order["path"], "ab", buffering=WRITE_BUFFER) as out,
    ):
        connection.read_only = True
        with cursor.copy(order["statement"]) as copy:
            for row in copy:  # one CSV line per chunk: libpq hands COPY's output over row by row
                out.write(row)
                reporter.rows += 1
        return cursor.rowcount


def main() -> int:
    order = json.loads(_first_line())
    threading.Thread(target=_leave_with_parent, daemon=True).start()
    reporter = _Reporter()
    reporter.start()
    try:
        rows = copy_to_file(order, reporter)
    except psycopg.Error as error:
        reporter.finish(
            {
                "error": str(error).strip() or type(error).__name__,
                "class": type(error).__name__,
                "connection_lost": isinstance(error, psycopg.OperationalError | psycopg.InterfaceError),
            }
        )
        return 1
    except OSError as error:
        reporter.finish({"error": f"could not write the file: {error.strerror or error}", "class": "OSError"})
        return 1
    reporter.finish({"done": rows, "peak_rss_kb": _peak_rss_kb()})
    return 0


def _peak_rss_kb() -> int:
    """This process's peak resident set since it started (VmHWM: getrusage's figure would count
    the worker's pages this process was forked with)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
