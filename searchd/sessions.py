"""Login sessions: a random id in the cookie, its record on the server.

POST /api/login with the token opens a session; the cookie holds only the session's random id (256
bits), never the token, and POST /api/logout ends the session on the server, so a copied cookie stops
working. Records live in DATA_DIR/sessions.json (mode 0600), so a restart does not log the page out:
each is an HMAC of the id keyed with the token (changing the token ends every session, and the file
gives nothing away) and an expiry. At most MAX_SESSIONS are kept; a new login beyond that ends the
oldest.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path

log = logging.getLogger(__name__)

LIFETIME_S = 30 * 24 * 3600
MAX_SESSIONS = 64  # one person's browsers and devices
ID_BYTES = 32


class SessionStore:
    """Thread-safe. `path` None keeps sessions in memory only."""

    def __init__(
        self, secret: str, path: Path | None, lifetime_s: float = LIFETIME_S, max_sessions: int = MAX_SESSIONS
    ) -> None:
        self._key = hashlib.sha256(b"photoseek-session\0" + secret.encode()).digest()
        self.path = path
        self.lifetime_s = lifetime_s
        self.max_sessions = max_sessions
        self._lock = threading.Lock()
        self._expiry: OrderedDict[str, float] = OrderedDict()  # digest -> expires at (unix time)
        self._load()

    def __len__(self) -> int:
        with self._lock:
            self._drop_expired(time.time())
            return len(self._expiry)

    def open(self) -> str:
        """A new session; returns its id (for the cookie)."""
        session_id = secrets.token_urlsafe(ID_BYTES)
        now = time.time()
        with self._lock:
            self._drop_expired(now)
            self._expiry[self._digest(session_id)] = now + self.lifetime_s
            while len(self._expiry) > self.max_sessions:
                self._expiry.popitem(last=False)  # the oldest login
            self._save()
        return session_id

    def valid(self, session_id: str) -> bool:
        if not session_id or len(session_id) > 200:
            return False
        with self._lock:
            expires = self._expiry.get(self._digest(session_id))
        return expires is not None and expires > time.time()

    def end(self, session_id: str) -> bool:
        """End a session; False when there was none by that id."""
        with self._lock:
            ended = self._expiry.pop(self._digest(session_id), None) is not None
            if ended:
                self._save()
        return ended

    # -- storage ------------------------------------------------------------------------------------
    def _digest(self, session_id: str) -> str:
        return hmac.new(self._key, session_id.encode(errors="replace"), hashlib.sha256).hexdigest()

    def _drop_expired(self, now: float) -> None:
        for digest in [d for d, t in self._expiry.items() if t <= now]:
            del self._expiry[digest]

    def _load(self) -> None:
        if self.path is None or not self.path.is_file():
            return
        try:
            doc = json.loads(self.path.read_text())
            records = sorted((float(t), str(d)) for d, t in doc.get("sessions", {}).items())
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            log.warning("ignoring unreadable %s (%s): every browser logs in again", self.path, exc)
            return
        now = time.time()
        for expires, digest in records[-self.max_sessions :]:
            if expires > now:
                self._expiry[digest] = expires

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"sessions": dict(self._expiry)}, f)
            os.replace(tmp, self.path)
        except OSError as exc:  # a read-only data dir: sessions still work until a restart
            log.warning("cannot save login sessions to %s: %s", self.path, exc)
