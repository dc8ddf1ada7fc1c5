"""Say it once: a missing optional decoder would otherwise log the same advice for every HEIC file."""

from __future__ import annotations

import logging
from collections import Counter

from indexer.formats import NO_HEIF, NO_RAW

ONCE_REASONS = (NO_HEIF, NO_RAW)


class OncePerReason(logging.Filter):
    """Lets the first "skipping FILE: REASON" through for each once-only reason, counts the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.suppressed: Counter = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        for reason in ONCE_REASONS:
            if reason in msg:
                self.suppressed[reason] += 1
                if self.suppressed[reason] > 1:
                    return False
                record.msg = "%s (said once; other files with this reason are skipped quietly)"
                record.args = (msg,)
        return True

    def report(self) -> None:
        for reason, n in self.suppressed.items():
            if n > 1:
                logging.getLogger("indexer.watch").warning("%d files skipped: %s", n, reason)
