"""Log lines the journal keeps whole.

Under systemd, stderr is a stream to journald (``JOURNAL_STREAM`` names its
device and inode): journald makes one entry per line, with its own time
stamp, and takes the priority from a ``<N>`` prefix. There each event is
one line of ``key=value`` fields, a traceback folded into the same line
(``exc=``), so ``journalctl -p warning`` and a grep for ``logger=`` find
whole events. Elsewhere (a terminal, a test) the usual readable line stays.
"""

from __future__ import annotations

import logging
import os
import sys

# syslog priorities (RFC 5424), what journald reads from the prefix.
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}


def quote(text: str) -> str:
    """A value on one line: in double quotes, backslash, quote and line ends escaped."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r", "\\r").replace("\n", "\\n") + '"'


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        line = (f"<{priority}>level={record.levelname.lower()} logger={record.name} "
                f"msg={quote(record.getMessage())}")
        if record.exc_info:
            line += f" exc={quote(self.formatException(record.exc_info))}"
        if record.stack_info:
            line += f" stack={quote(record.stack_info)}"
        return line


def to_journal() -> bool:
    """Whether stderr is the stream systemd connected to the journal."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    if not stream:
        return False
    try:
        found = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return stream == f"{found.st_dev}:{found.st_ino}"
