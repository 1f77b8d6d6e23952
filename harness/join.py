"""Joining a live workshop: `watch --join` sends every run's result to the host's server.

    python scoreboard.py watch 01_tensor --join http://10.0.0.5:8765 --token 7f3a91c204be

After each finished run, watch hands its result to a HostLink, which sends it from a
thread of its own: the watch never waits for the network. A result is a whole
snapshot, so only the newest one waiting is kept; while the host cannot be reached
it is sent again after 1, 2, 4, 8, then every 15 seconds. The screen shows the link
in one line: "host: connected, last sent 12 s ago · rank 3 of 42", "host unreachable
(connection refused) · retry in 8 s", or why the host refused.

The host binds a participant's name to a key: watch makes one the first time it
joins a host under a name, keeps it in the progress folder (workshop-keys.json) and
sends it with every result, so a restarted watch is still the same participant, and
nobody else can send results under that name.

This module also holds what the host (harness/host.py) and watch must agree on: the
paths, the key's header and which names a host accepts.
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
import threading
import time
import unicodedata
import urllib.error
import urllib.parse
import urllib.request

from harness import progress

RESULTS_PATH, STANDINGS_PATH = "/results", "/standings.json"
KEY_HEADER = "X-Participant-Key"
KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,128}")
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{4,128}")
NAME_LENGTH = 40
SEND_TIMEOUT = 5.0  # seconds for one attempt: connecting, sending and the answer
BACKOFF = (1, 2, 4, 8, 15)  # seconds before each new attempt while the host cannot be reached
MAX_ANSWER = 64 * 1024


def name_problem(name: str) -> str | None:
    """Why a host refuses `name` as a participant's name, or None when it is fine.

    The name is shown to the whole room: it is 1 to 40 characters, with no markup
    (< or >) and no control or invisible formatting characters."""
    name = name.strip()
    if not name:
        return "the name is empty"
    if len(name) > NAME_LENGTH:
        return f"the name is {len(name)} characters long; a name has at most {NAME_LENGTH}"
    if "<" in name or ">" in name:
        return "the name contains < or >, which look like markup on the page"
    if any(unicodedata.category(c).startswith("C") for c in name):
        return "the name contains control or invisible formatting characters"
    return None


def base_url(url: str) -> str:
    """The host's address as `http://HOST:PORT`; ValueError says what is wrong with `url`."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"--join needs the address the host printed, like http://10.0.0.5:8765; got {url!r}")
    try:
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError:
        raise ValueError(f"the port in {url!r} is not a number") from None
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host")
    if parts.path.strip("/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"--join takes the host's address alone, like http://10.0.0.5:8765; got {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def participant_key(url: str, name: str) -> str:
    """The key this participant uses with the host at `url`: made once, then kept."""
    from harness.leaderboard import same_person  # the host's rule for when two names are one person

    path = progress.progress_dir() / "workshop-keys.json"
    with progress.history_lock():
        keys = progress.read_json(path, {})
        keys = keys if isinstance(keys, dict) else {}
        slot = f"{url} {same_person(name)}"
        key = keys.get(slot)
        if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
            key = keys[slot] = secrets.token_urlsafe(24)
            progress.write_json(path, keys)
    return key


# -- one attempt ------------------------------------------------------------------------

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a host answers itself; a redirect is reported as the HTTP error it is


# No proxy: the host is on the room's network, and a proxy set for the internet would not reach it.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def _answer(raw: bytes) -> dict:
    try:
        answer = json.loads(raw.decode("utf-8"))
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _network_problem(error: BaseException) -> str:
    """A failed attempt in a few words: `connection refused`, `no answer within 5 s`."""
    reason = getattr(error, "reason", error)
    if isinstance(reason, TimeoutError) or isinstance(error, TimeoutError):
        return f"no answer within {SEND_TIMEOUT:g} s"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror[0].lower() + reason.strerror[1:]
    return str(reason) or type(reason).__name__


def send_result(url: str, token: str, key: str, result: dict,
                timeout: float = SEND_TIMEOUT) -> tuple[int | None, dict, str]:
    """POST `result` to the host: (HTTP status or None, the host's JSON answer, a network problem or "")."""
    body = json.dumps(result, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url + RESULTS_PATH, data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}", KEY_HEADER: key})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, _answer(response.read(MAX_ANSWER)), ""
    except urllib.error.HTTPError as error:
        try:
            answer = _answer(error.read(MAX_ANSWER))
        except (OSError, http.client.HTTPException):
            answer = {}
        return error.code, answer, ""
    except (OSError, http.client.HTTPException, ValueError) as error:  # URLError is an OSError
        return None, {}, _network_problem(error)


# -- the link, in the background --------------------------------------------------------------

def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} min" if seconds < 3600 else f"{seconds // 3600} h {seconds // 60 % 60} min"


class HostLink:
    """Sends results to a workshop host from a thread; `submit` never waits.

    `wake` (a threading.Event) is set whenever the status changes, so a screen can redraw.
    """

    def __init__(self, url: str, token: str, key: str, wake: threading.Event | None = None,
                 send=send_result, clock=time.monotonic):
        self.url, self.token, self.key, self.wake = url, token, key, wake
        self._send, self._clock = send, clock
        self._condition = threading.Condition()
        self.pending: dict | None = None  # the newest result the host has not acknowledged
        self.sent_at: float | None = None  # when the host last acknowledged one
        self.rank = ""  # "rank 3 of 42", from the host's last answer
        self.problem = ""  # why the last attempt did not reach the host: "host unreachable (...)"
        self.retry_at = 0.0
        self.failures = 0
        self.refused = ""  # why the host refused the last result it was sent
        self.stopped = ""  # why nothing more will be sent (a wrong token, a taken name, the end)
        self.changes = 0  # counts status changes, for a log that prints each once
        self._thread = threading.Thread(target=self._run, name="host-link", daemon=True)
        self._thread.start()

    def submit(self, result: dict) -> None:
        """Queue `result` for the host, replacing one still waiting (it is newer and says more)."""
        with self._condition:
            self.pending = result
            self._condition.notify_all()

    def status(self, now: float | None = None) -> str:
        """One line on how the link is doing: `host: connected, last sent 12 s ago · rank 3 of 42`."""
        now = self._clock() if now is None else now
        with self._condition:
            if self.stopped:
                return self.stopped
            sent = f"last sent {_ago(now - self.sent_at)} ago" if self.sent_at is not None else ""
            if self.problem:
                retry = f"retry in {max(1, round(self.retry_at - now))} s" if self.pending is not None else ""
                return " · ".join(part for part in (self.problem, retry, sent) if part)
            if self.sent_at is None:
                line = "host: sending the first result…" if self.pending is not None else "host: waiting for a run"
            else:
                line = f"host: connected, {sent}" + (f" · {self.rank}" if self.rank else "")
            return line + (f" · refused the last result: {self.refused}" if self.refused else "")

    def close(self, patience: float = SEND_TIMEOUT + 2) -> bool:
        """Send what is waiting now, waiting at most `patience` seconds; True once nothing is left unsent."""
        deadline = self._clock() + patience
        with self._condition:
            self.retry_at = 0.0  # no more backing off: one last try now
            self._condition.notify_all()
            while self.pending is not None and not self.stopped and self._clock() < deadline:
                self._condition.wait(max(0.01, deadline - self._clock()))
            return self.pending is None

    # -- the thread -----------------------------------------------------------------------

    def _changed(self) -> None:
        self.changes += 1
        self._condition.notify_all()
        if self.wake is not None:
            self.wake.set()

    def _run(self) -> None:
        while True:
            with self._condition:
                while self.pending is None or self.stopped or self._clock() < self.retry_at:
                    if self.stopped:
                        return
                    wait = None if self.pending is None else self.retry_at - self._clock()
                    self._condition.wait(wait)
                result = self.pending
            status, answer, problem = self._send(self.url, self.token, self.key, result)
            with self._condition:
                self._take(result, status, answer, problem)
                self._changed()

    def _take(self, result: dict, status: int | None, answer: dict, problem: str) -> None:
        """Update the link from one attempt's outcome (called with the condition held)."""
        now = self._clock()
        reason = answer.get("error") if isinstance(answer.get("error"), str) else ""
        reason = _plain(reason)[:200] or (f"HTTP {status}" if status else "")
        stopping = status in (401, 410) or (status == 409 and answer.get("code") == "name-taken")
        finished = status == 200 or (status is not None and 400 <= status < 500 and status not in (408, 429))
        if finished and not stopping and self.pending is result:  # a newer one may have come: it still goes
            self.pending = None
        if status == 200:
            self.sent_at, self.problem, self.failures, self.refused = now, "", 0, ""
            rank, of = answer.get("rank"), answer.get("participants")
            self.rank = f"rank {rank} of {of}" if isinstance(rank, int) and isinstance(of, int) else ""
        elif status == 401:
            self.stopped = f"host refused the token ({reason}): check --token"
        elif stopping:  # the session has ended, or the name is someone else's
            self.stopped = f"host: {reason}"
        elif finished:  # this result will never be accepted; the next one may be
            self.problem, self.refused = "", reason
        else:  # the network, or the host busy (429, 503) or failing (500): try again later
            self.failures += 1
            delay = BACKOFF[min(self.failures, len(BACKOFF)) - 1]
            self.retry_at = now + max(delay, _retry_after(answer, status))
            self.problem = (f"host unreachable ({problem})" if status is None
                            else f"host busy ({reason})" if status in (429, 503) else f"host error ({reason})")


def _plain(text: str) -> str:
    """What a host said, on one line, without characters that could move the participant's cursor."""
    return "".join("\ufffd" if unicodedata.category(c).startswith("C") else c for c in " ".join(text.split()))


def _retry_after(answer: dict, status: int | None) -> float:
    wait = answer.get("retry_after") if status == 429 else None
    return float(min(60, wait)) if isinstance(wait, (int, float)) and wait > 0 else 0.0
