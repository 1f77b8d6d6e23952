"""A live workshop: the host's server, whose leaderboard fills itself as tests turn green.

    python scoreboard.py host KATA [--minutes M] [--port P] [--bind ADDRESS] [--folder DIR] [--new]

The host starts the session's clock and prints the command participants type:

    python scoreboard.py watch 01_tensor --join http://10.0.0.5:8765 --token 7f3a91c204be

Each participant's `watch` then sends the result of every run (harness/join.py). The
server answers

    GET  /                 the projector page: the board, reloading itself (no token needed;
                           it never shows the token)
    GET  /standings.json   the standings as JSON, for `Authorization: Bearer TOKEN`
    POST /results          one participant's result (docs/result-format.md), with
                           `Authorization: Bearer TOKEN` and `X-Participant-Key: KEY`

Everything lives in one folder (default `workshop/<kata>/`): `session.json` (the kata,
the token, the clock, and which key each name is bound to), `results/` (each
participant's latest result, a folder `scoreboard.py leaderboard` reads), `host.log`,
and at the end `board.html` and `board.json`. Files are written whole (through a
temporary file and a rename), and a result is acknowledged only once it is on disk, so
stopping or killing the host loses nothing acknowledged; the same command resumes the
session and its clock (`--new` starts a new one, keeping the old folder under another
name). When the time is up the host still accepts results for a grace period (the
participants' last runs), then writes the final board and keeps showing it until Ctrl-C.

The room's network is not trusted. Without the session token nothing is accepted (it
is compared in constant time). A body is refused before it is read when it is larger
than MAX_BODY; what is read must be a valid result (the leaderboard's checks: UTF-8,
JSON without NaN, huge numbers or deep nesting, harness.grades.validate_result, not the
reference) of this kata, under a name without markup or control characters, with no
time after its own creation and no first green moved since the result held. The first
result under a name binds it to the sender's key; another key is told the name is
taken. Each address may hold PER_ADDRESS connections and make RATE requests a second
(BURST at once); a request must arrive whole within --request-timeout seconds. Every
refusal is answered with a status and a JSON `{"accepted": false, "code", "error"}`,
and logged with the address and the name it carried.

Exit status: 0 after Ctrl-C (or SIGTERM, SIGHUP), 2 when the session cannot start (an
unknown kata, a port in use, a folder holding another kata's session).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import math
import secrets
import signal
import socket
import sys
import threading
import time
import traceback
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

try:
    import fcntl
except ImportError:  # Windows: nothing stops two hosts sharing a folder but the host's own care
    fcntl = None

from harness import leaderboard, progress
from harness import manifest as manifest_module
from harness.join import KEY_HEADER, KEY_PATTERN, RESULTS_PATH, STANDINGS_PATH, name_problem
from harness.leaderboard import BadFile, entry_for, moment, rank, same_person, shown
from harness.runs import KATA, find_target
from harness.watch import format_clock, slug

DEFAULT_PORT, DEFAULT_BIND = 8765, "127.0.0.1"
MAX_BODY = 64 * 1024  # one kata's result is a few kilobytes
REQUEST_SECONDS = 10.0  # a request (headers and body) arrives whole within this
GRACE_SECONDS = 60.0  # results still accepted after the time is up: the participants' last runs
PAGE_REFRESH = 5  # seconds between reloads of the projector page
RATE, BURST = 5.0, 40  # requests a second from one address, and at once
PER_ADDRESS, MAX_CONNECTIONS = 8, 256  # connections open at once from one address, and in all
MAX_PARTICIPANTS = 500
SESSION_FORMAT = "tinytorch-host-session"
STANDINGS_FORMAT = "tinytorch-standings"
RUNNING, TIME_UP, ENDED = "running", "time is up", "ended"
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
_DONT_WAIT = getattr(socket, "MSG_DONTWAIT", 0)  # a refusal is a few bytes: it never needs to wait


class Refusal(Exception):
    """A request the host will not serve: an HTTP status, a short code and a reason for the sender."""

    def __init__(self, status: int, code: str, reason: str, participant: str = "", retry_after: int = 0):
        super().__init__(reason)
        self.status, self.code, self.reason, self.participant = status, code, reason, participant
        self.retry_after = retry_after


def _utc(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _printable(text: str) -> str:
    """`text` with control and formatting characters replaced: a request's bytes cannot move the cursor."""
    return "".join("\ufffd" if unicodedata.category(c).startswith("C") else c for c in text)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


# -- the session: clock, participants, their results on disk ------------------------------------

@dataclass
class Participant:
    name: str
    key_digest: str  # sha256 of the participant's key: the file alone cannot be used to pose as them
    file: str  # the result's file name in results/
    joined_at: str
    result: dict | None = None
    entry: leaderboard.Entry | None = None
    received_at: str = ""


@dataclass
class Workshop:
    """One session of one kata, kept in `folder`; safe to use from many threads."""

    folder: Path
    target: object  # harness.runs.Target
    token: str
    started: float  # time.time() when the clock started
    minutes: float
    grace: float = GRACE_SECONDS
    participants: dict = field(default_factory=dict)  # same_person(name) -> Participant, in joining order
    version: int = 0  # counts accepted results: the page is drawn again when it changes

    def __post_init__(self):
        self._lock = threading.RLock()  # the participants and the version
        self._name_locks: dict[str, threading.Lock] = {}
        self._session_lock = threading.Lock()  # session.json
        self._log_lock = threading.Lock()
        self._page_cache: tuple = (None, "")

    # -- opening and keeping --------------------------------------------------------------

    @property
    def results_dir(self) -> Path:
        return self.folder / "results"

    @classmethod
    def open(cls, folder: Path, target, minutes: float | None, grace: float, new: bool) -> tuple[Workshop, str]:
        """The session in `folder`, resumed, or a new one; and a sentence saying which.

        Raises ValueError (the message says why) when the folder holds what cannot be resumed."""
        path = folder / "session.json"
        if new and folder.exists() and any(folder.iterdir()):
            moved = folder.with_name(f"{folder.name}-{datetime.now():%Y%m%d-%H%M%S}")
            folder.rename(moved)
            said = f"The earlier session was moved to {moved}. "
        else:
            said = ""
        if not path.exists():
            if folder.exists() and any(folder.iterdir()):
                raise ValueError(f"{folder} holds files but no session; give another --folder, or --new to "
                                 "move them aside")
            workshop = cls(folder, target, secrets.token_hex(6), time.time(),
                           float(minutes if minutes is not None else target.minutes), grace)
            workshop.save_session()
            return workshop, said + "A new session starts now."
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != SESSION_FORMAT or data.get("version") != 1:
                raise ValueError("not a host session file")
            if data["kata"] != target.id:
                raise ValueError(f"it holds a session of {data['kata']}; to host {target.id}, give another "
                                 f"--folder (or --new, which moves this session aside)")
            workshop = cls(folder, target, str(data["token"]), moment(data["started_at"]).timestamp(),
                           float(data["minutes"]), grace)
            for record in data["participants"]:
                person = Participant(str(record["name"]), str(record["key_sha256"]), Path(record["file"]).name,
                                     str(record["joined_at"]))
                workshop.participants[same_person(person.name)] = person
        except (OSError, ValueError, KeyError, TypeError, BadFile) as error:
            raise ValueError(f"cannot resume the session in {path}: {error}") from None
        for half_written in [*folder.glob(".*.tmp*"), *workshop.results_dir.glob(".*.tmp*")]:
            half_written.unlink(missing_ok=True)  # the host was killed while writing: never acknowledged
        if minutes is not None and minutes != workshop.minutes:
            workshop.minutes = float(minutes)
            workshop.save_session()
        workshop._load_results()
        return workshop, "The session resumes: same token, same clock."

    def _load_results(self) -> None:
        for person in self.participants.values():
            path = self.results_dir / person.file
            if not path.exists():
                continue  # bound, but the host stopped before the result was written (and acknowledged)
            try:
                person.result = leaderboard.read_result(path)
                person.entry = entry_for(person.result, person.file, self.target.id)
                person.received_at = _utc(path.stat().st_mtime)
            except (BadFile, OSError) as error:
                self.log(f"warning: cannot read {path}: {error}")

    def save_session(self) -> None:
        with self._session_lock:  # the snapshot too, so that the last file written is the newest
            with self._lock:
                records = [{"name": p.name, "key_sha256": p.key_digest, "file": p.file, "joined_at": p.joined_at}
                           for p in self.participants.values()]
            data = {"format": SESSION_FORMAT, "version": 1, "kata": self.target.id, "token": self.token,
                    "started_at": _utc(self.started), "minutes": self.minutes, "participants": records}
            progress.write_json(self.folder / "session.json", data)

    def log(self, line: str) -> None:
        """A line on the host's terminal and in host.log (what a request carried cannot move the cursor)."""
        line = "\n".join(_printable(part[:1000]) for part in line.splitlines())
        stamped = f"{time.strftime('%H:%M:%S')}  {line}"
        with self._log_lock:
            try:
                print(stamped, flush=True)
            except (OSError, ValueError):  # the terminal went away: the log file still has it
                pass
            try:
                with open(self.folder / "host.log", "a", encoding="utf-8") as log:
                    log.write(stamped + "\n")
            except OSError:
                pass

    # -- the clock ------------------------------------------------------------------------

    @property
    def ends(self) -> float:
        return self.started + self.minutes * 60

    def state(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        return RUNNING if now < self.ends else TIME_UP if now < self.ends + self.grace else ENDED

    def clock_line(self, now: float) -> str:
        state = self.state(now)
        if state == RUNNING:
            return f"time left {format_clock(math.ceil(self.ends - now))} of {format_clock(self.minutes * 60)}"
        return "time is up: the last results are coming in" if state == TIME_UP else "final standings"

    # -- a result arrives -------------------------------------------------------------------

    def accept(self, raw: bytes, key: str | None, now: float | None = None) -> dict:
        """Check one posted result and keep it; the answer for the sender. Raises Refusal."""
        now = time.time() if now is None else now
        if self.state(now) == ENDED:
            raise Refusal(410, "ended", f"the session ended at {_utc(self.ends + self.grace)}; "
                                        "results are no longer accepted")
        try:
            data = leaderboard.parse_json(raw)
        except BadFile as error:
            raise Refusal(400, "bad-json", str(error)) from None
        name = data.get("participant") if isinstance(data, dict) else None
        name = name.strip() if isinstance(name, str) else ""
        try:
            leaderboard.check_result(data)
        except BadFile as error:
            raise Refusal(422, "invalid-result", str(error), name) from None
        problem = name_problem(name)
        if problem:
            raise Refusal(422, "bad-name", f"{problem}; choose another with --name", name)
        self._check_kata(data, name)
        _check_times(data, name)
        if key is not None and not KEY_PATTERN.fullmatch(key):
            raise Refusal(400, "bad-key", f"{KEY_HEADER} should be 16 to 128 letters, digits, - or _", name)
        identity = same_person(name)
        with self._lock:
            name_lock = self._name_locks.setdefault(identity, threading.Lock())
        with name_lock:  # one result of a participant at a time; other participants go on meanwhile
            person, key = self._bind(identity, name, key)
            if person.result is not None:
                _check_order(person.result, data, name)
            progress.write_json(self.results_dir / person.file, data)  # on disk before it is acknowledged
            entry = entry_for(data, person.file, self.target.id)
            with self._lock:
                changed = person.entry is None or person.entry.done != entry.done
                person.result, person.entry, person.received_at = data, entry, _utc(now)
                self.version += 1
                ranked = self.ranked()
        place = next(place for place, e in ranked if e is entry)
        if changed:
            self.log(f"{shown(name, 40)}: {leaderboard.checkpoints(entry)} checkpoints (rank {place} of {len(ranked)})")
        return {"accepted": True, "participant": name, "key": key, "rank": place, "participants": len(ranked),
                "state": self.state(now), "seconds_left": max(0.0, round(self.ends - now, 1))}

    def _check_kata(self, data: dict, name: str) -> None:
        ids = [kata["id"] for kata in data["katas"]]
        if ids != [self.target.id]:
            raise Refusal(422, "wrong-kata", f"a result for {', '.join(ids) or 'no kata'}, and this workshop "
                                             f"is {self.target.id}", name)
        names = [c["name"] for c in data["katas"][0]["checkpoints"]]
        if names != [c[0] for c in self.target.checkpoints]:
            raise Refusal(422, "wrong-kata", f"its checkpoints are not those of {self.target.id} on the host; "
                                             "is the participant's copy of the katas the same?", name)

    def _bind(self, identity: str, name: str, key: str | None) -> tuple[Participant, str]:
        """The participant `name` is, after checking `key` (the first result binds it)."""
        person = self.participants.get(identity)
        if person is None:
            if len(self.participants) >= MAX_PARTICIPANTS:
                raise Refusal(409, "full", f"this workshop already has {MAX_PARTICIPANTS} participants", name)
            key = key or secrets.token_urlsafe(24)
            file = f"{slug(name)}-{_digest(identity)[:8]}.json"
            person = Participant(name, _digest(key), file, _utc(time.time()))
            with self._lock:
                self.participants[identity] = person
            self.save_session()
            self.log(f"{shown(name, 40)} joined")
            return person, key
        if key is None or not hmac.compare_digest(_digest(key), person.key_digest):
            raise Refusal(409, "name-taken", f"the name {shown(person.name, 40)!r} is taken by another participant "
                                             "on this host; choose another with --name", name)
        return person, key

    # -- what is shown ------------------------------------------------------------------------

    def ranked(self) -> list:
        """(rank, Entry) for everyone with a result, best first; ties keep the joining order."""
        with self._lock:
            return rank([p.entry for p in self.participants.values() if p.entry is not None])

    def standings(self, now: float | None = None) -> dict:
        now = time.time() if now is None else now
        with self._lock:
            ranked = self.ranked()
            received = {id(p.entry): p for p in self.participants.values()}  # each entry's participant
        return {"format": STANDINGS_FORMAT, "version": 1, "kata": self.target.id, "title": self.target.title,
                "started_at": _utc(self.started), "ends_at": _utc(self.ends), "minutes": self.minutes,
                "state": self.state(now), "seconds_left": max(0.0, round(self.ends - now, 1)),
                "standings": [{"rank": place, "participant": entry.participant, "checkpoints_done": entry.done,
                               "checkpoints_total": entry.total, "seconds": entry.seconds, "hints": entry.hints,
                               "created_at": received[id(entry)].result["created_at"],
                               "received_at": received[id(entry)].received_at}
                              for place, entry in ranked]}

    def page(self, join_line: str, now: float | None = None, refresh: int | None = PAGE_REFRESH) -> str:
        """The projector page; drawn again only when a result came or the clock moved on a second."""
        now = time.time() if now is None else now
        state = self.state(now)
        key = (self.version, int(now), state, refresh)
        cached_key, cached = self._page_cache
        if key == cached_key:
            return cached
        ranked = self.ranked()
        lines = [("clock", self.clock_line(now))]
        if state != ENDED and join_line:
            lines.append(("join", join_line))
        text = leaderboard.render_html(ranked, [], self.target.id, refresh=refresh if state != ENDED else None,
                                       heading=f"{self.target.label} · live leaderboard", lines=tuple(lines))
        self._page_cache = (key, text)
        return text

    def write_board(self, now: float | None = None) -> tuple[Path, Path]:
        """board.html and board.json in the folder: the board as it stands (final once the session ended)."""
        html_path, json_path = self.folder / "board.html", self.folder / "board.json"
        progress.write_atomically(html_path, self.page("", now, refresh=None))
        progress.write_json(json_path, self.standings(now))
        return html_path, json_path


def _check_times(data: dict, name: str) -> None:
    """No time in a result after the moment it was made: a clock or a green from the future."""
    made = moment(data["created_at"])
    for kata in data["katas"]:
        if kata["started_at"] and moment(kata["started_at"]) > made:
            raise Refusal(422, "time-order", f"{kata['id']}'s clock started at {kata['started_at']}, after the "
                                             f"result was made ({data['created_at']})", name)
        for checkpoint in kata["checkpoints"]:
            green = checkpoint["first_green_at"]
            if green and moment(green) > made:
                raise Refusal(422, "time-order", f"{checkpoint['name']} went green at {green}, after the result "
                                                 f"was made ({data['created_at']})", name)


def _check_order(held: dict, data: dict, name: str) -> None:
    """A participant's results come newest last, and a first green, once held, never moves."""
    if moment(data["created_at"]) < moment(held["created_at"]):
        raise Refusal(409, "stale", f"older ({data['created_at']}) than the result the host holds "
                                    f"({held['created_at']})", name)
    old, new = held["katas"][0], data["katas"][0]
    if old["started_at"] != new["started_at"]:
        return  # the participant's clock was restarted (watch --restart): first greens start afresh
    for before, now in zip(old["checkpoints"], new["checkpoints"]):
        if before["first_green_at"] and now["first_green_at"] != before["first_green_at"]:
            raise Refusal(409, "time-order", f"{now['name']} first went green at {before['first_green_at']} in the "
                                             f"result the host holds, and {now['first_green_at']} in this one; "
                                             "a first green never moves", name)


# -- limits per address -----------------------------------------------------------------------

class RateLimiter:
    """A bucket per address: BURST requests at once, refilled at RATE a second."""

    def __init__(self, rate: float = RATE, burst: int = BURST):
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait(self, address: str, now: float) -> float:
        """0 when `address` may make a request now (and it is counted), else the seconds to wait."""
        with self._lock:
            tokens, then = self._buckets.get(address, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            if tokens >= 1:
                self._buckets[address] = (tokens - 1, now)
                return 0.0
            self._buckets[address] = (tokens, now)
            return (1 - tokens) / self.rate

    def forget_idle(self, now: float) -> None:
        """Drop the buckets that are full again, so a long session's addresses do not pile up."""
        with self._lock:
            for address, (tokens, then) in list(self._buckets.items()):
                if tokens + (now - then) * self.rate >= self.burst:
                    del self._buckets[address]


@dataclass
class Connection:
    """One open connection: who, since when, and whether its headers are still on their way."""

    address: str
    opened: float  # time.monotonic()
    stage: str = "headers"  # then "answering"; "reaped" when it took too long to send its headers
    lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self) -> bool:
        with self.lock:
            if self.stage == "reaped":
                return False
            self.stage = "answering"
            return True

    def reap(self) -> bool:
        with self.lock:
            if self.stage != "headers":
                return False
            self.stage = "reaped"
            return True


def _raw_answer(status: str, code: str, reason: str) -> bytes:
    """A whole HTTP answer, for a connection the server refuses before any handler reads it."""
    body = json.dumps({"accepted": False, "code": code, "error": reason}).encode() + b"\n"
    return (f"HTTP/1.0 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode() + body


class HostServer(ThreadingHTTPServer):
    """The HTTP server, with a limit on connections per address and a deadline for every request."""

    daemon_threads = False  # Ctrl-C waits for the requests under way (each has a deadline)
    block_on_close = True
    request_queue_size = 128  # a room connecting at once must not wait for a second try
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], workshop: Workshop | None, request_seconds: float = REQUEST_SECONDS):
        self.workshop = workshop
        self.request_seconds = request_seconds
        self.limiter = RateLimiter()
        self.connections: dict[socket.socket, Connection] = {}
        self._connections_lock = threading.Lock()
        self._said_busy: dict[str, float] = {}  # address -> when its refusals were last logged
        self.join_line = ""  # on the page: how to join, without the token
        self.refresh = PAGE_REFRESH
        self.on_tick = None  # called from the serving loop, a few times a second
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

    def process_request(self, request, client_address):
        address = client_address[0]
        with self._connections_lock:
            mine = sum(1 for c in self.connections.values() if c.address == address)
            crowded = len(self.connections) >= MAX_CONNECTIONS
            admitted = mine < PER_ADDRESS and not crowded
            if admitted:
                self.connections[request] = Connection(address, time.monotonic())
        if not admitted:
            reason = "too many connections open at once" + (f" from {address}" if not crowded else "")
            self.quietly_log(address, f"refused a connection from {address}: {reason}")
            try:
                request.send(_raw_answer("503 Service Unavailable", "busy", reason), _DONT_WAIT)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._connections_lock:
            self.connections.pop(request, None)
        super().shutdown_request(request)

    def service_actions(self):
        """Between polls: close connections whose headers are too slow, and keep the clock."""
        now = time.monotonic()
        with self._connections_lock:
            late = [(s, c) for s, c in self.connections.items() if now - c.opened > self.request_seconds]
        for sock, connection in late:
            if connection.reap():  # still sending headers: a slow sender or a half-open connection
                self.quietly_log(connection.address, f"refused {connection.address}: the request did not arrive "
                                                     f"within {self.request_seconds:g} s")
                _close(sock, _raw_answer("408 Request Timeout", "timeout", f"the request did not arrive "
                                                                           f"within {self.request_seconds:g} s"))
            elif now - connection.opened > self.request_seconds + 30:  # a client that never reads the answer
                _close(sock, b"")
        self.limiter.forget_idle(now)
        for address, said in list(self._said_busy.items()):
            if now - said > 60:
                del self._said_busy[address]
        if self.on_tick is not None:
            self.on_tick()

    def quietly_log(self, address: str, line: str) -> None:
        """Log a refusal, but for a flood only one line every 10 seconds per address."""
        now = time.monotonic()
        if now - self._said_busy.get(address, -1e9) >= 10:
            self._said_busy[address] = now
            self.workshop.log(line)

    def close_connections(self) -> None:
        """End every open connection (when the host stops), so no request keeps it waiting."""
        with self._connections_lock:
            sockets = list(self.connections)
        for sock in sockets:
            _close(sock, b"")


def _close(sock: socket.socket, answer: bytes) -> None:
    try:
        if answer:
            sock.send(answer, _DONT_WAIT)
        sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked reading it
    except OSError:
        pass


# -- one request ------------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    server_version = "tinytorch-host"
    sys_version = ""
    protocol_version = "HTTP/1.0"  # one request per connection: its deadline is the connection's
    error_content_type = "text/plain; charset=utf-8"
    error_message_format = "%(code)d %(message)s: %(explain)s\n"
    server: HostServer

    def version_string(self) -> str:
        return self.server_version

    def setup(self):
        self.timeout = self.server.request_seconds + 5  # per read or write; the server also keeps a deadline
        super().setup()
        self.connection_state = self.server.connections.get(self.request) or Connection("?", time.monotonic())
        self.unread_body = False

    def log_message(self, format, *args):  # noqa: A002 (http.server's name)
        pass  # the host logs what matters itself: results, refusals and errors

    def do_GET(self):
        self._serve(self._get)

    def do_POST(self):
        self._serve(self._post)

    def _refuse_method(self):
        self._serve(self._not_allowed)

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _refuse_method

    def _not_allowed(self) -> None:
        raise Refusal(405, "method", f"{self.command} is not served here: GET the page, POST to {RESULTS_PATH}")

    # -- the answer ---------------------------------------------------------------------------

    def _serve(self, handle) -> None:
        if not self.connection_state.begin():  # the server already answered 408
            self.close_connection = True
            return
        address = self.client_address[0]
        try:
            wait = self.server.limiter.wait(address, time.monotonic())
            if wait:
                raise Refusal(429, "rate-limited", f"too many requests from {address}; try again in "
                                                   f"{math.ceil(wait)} s", retry_after=math.ceil(wait))
            handle()
        except Refusal as refusal:
            line = f"refused {address}" + (f" ({shown(refusal.participant, 40)})" if refusal.participant else "") \
                + f": {refusal.status} {refusal.reason}"
            if refusal.status == 429:
                self.server.quietly_log(address, line + " (further refusals of this address for 10 s not logged)")
            elif refusal.status != 404:
                self.server.workshop.log(line)
            headers = {"Retry-After": str(refusal.retry_after)} if refusal.retry_after else {}
            if refusal.status == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="workshop"'
            answer = {"accepted": False, "code": refusal.code, "error": refusal.reason}
            if refusal.retry_after:
                answer["retry_after"] = refusal.retry_after
            self._send(refusal.status, "application/json", json.dumps(answer) + "\n", headers)
        except Exception:  # a bug must not take the host down: say so, and keep serving
            self.server.workshop.log(f"error answering {address} {self.command} {shown(self.path, 80)}:\n"
                                     + traceback.format_exc().rstrip())
            self._send(500, "application/json", json.dumps({"accepted": False, "code": "host-error",
                                                            "error": "the host failed; see its log"}) + "\n")

    def _send(self, status: int, kind: str, text: str, headers: dict | None = None) -> None:
        body = text.encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy", leaderboard.CONTENT_SECURITY_POLICY)
            self.send_header("Referrer-Policy", "no-referrer")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client went away: nothing to tell it
            self.close_connection = True

    def finish(self):
        super().finish()
        if self.unread_body:  # read what the client still sends, so closing does not reset the connection
            _drain(self.connection, deadline=time.monotonic() + 1.0)

    # -- the endpoints ----------------------------------------------------------------------------

    def _get(self) -> None:
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            page = self.server.workshop.page(self.server.join_line, refresh=self.server.refresh)
            self._send(200, "text/html", page)
        elif path == STANDINGS_PATH:
            self._check_token()
            self._send(200, "application/json", json.dumps(self.server.workshop.standings(), indent=1) + "\n")
        else:
            raise Refusal(404, "not-found", f"nothing at {shown(path, 80)}; the page is at /")

    def _post(self) -> None:
        self.unread_body = "Content-Length" in self.headers or "Transfer-Encoding" in self.headers
        if urlsplit(self.path).path != RESULTS_PATH:
            raise Refusal(404, "not-found", f"results are sent to {RESULTS_PATH}")
        self._check_token()
        raw = self._read_body()
        answer = self.server.workshop.accept(raw, self.headers.get(KEY_HEADER))
        self._send(200, "application/json", json.dumps(answer) + "\n")

    def _check_token(self) -> None:
        given = self.headers.get("Authorization")
        if not given:
            raise Refusal(401, "no-token", "no session token: send the header `Authorization: Bearer TOKEN` "
                                           "with the token the host printed")
        scheme, _, value = given.partition(" ")
        expected = self.server.workshop.token.encode("ascii")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode("latin-1"), expected):
            raise Refusal(401, "wrong-token", "wrong session token")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise Refusal(411, "no-length", "send the body with a Content-Length; chunked bodies are not accepted")
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            raise Refusal(411, "no-length", "a result needs a Content-Length header")
        if len(set(lengths)) > 1 or not lengths[0].strip().isdigit():
            raise Refusal(400, "bad-length", f"Content-Length should be one number of bytes, got {lengths!r}")
        length = int(lengths[0])
        if length > MAX_BODY:
            raise Refusal(413, "too-large", f"the body is {length} bytes; a result is at most {MAX_BODY}")
        deadline = self.connection_state.opened + self.server.request_seconds
        chunks, got = [], 0
        while got < length:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Refusal(408, "timeout", f"the body did not arrive within {self.server.request_seconds:g} s "
                                              f"({got} of {length} bytes came)")
            try:
                self.connection.settimeout(left)
                chunk = self.rfile.read1(length - got)
            except TimeoutError:
                raise Refusal(408, "timeout", f"the body did not arrive within {self.server.request_seconds:g} s "
                                              f"({got} of {length} bytes came)") from None
            except OSError:
                raise Refusal(400, "truncated", f"the connection broke after {got} of {length} bytes") from None
            if not chunk:
                raise Refusal(400, "truncated", f"the body ended after {got} of the {length} bytes announced")
            chunks.append(chunk)
            got += len(chunk)
        self.unread_body = False
        return b"".join(chunks)


def _drain(sock: socket.socket, deadline: float, limit: int = 4 * MAX_BODY) -> None:
    """Read and drop what the client still sends, briefly: closing with unread data would reset the
    connection, and the client would lose the answer that says why it was refused."""
    try:
        sock.shutdown(socket.SHUT_WR)
        drained = 0
        while drained < limit and time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                break
            drained += len(chunk)
    except OSError:
        pass


# -- the command line ------------------------------------------------------------------------------

def room_address(bind: str) -> str:
    """The address participants reach this machine at: the bound one, or for all interfaces
    the address of the interface the default route leaves by (no packet is sent)."""
    if bind not in ("0.0.0.0", "", "::"):
        return bind
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # a documentation address: only the route is looked up
        return probe.getsockname()[0]
    except OSError:
        return socket.gethostname()
    finally:
        probe.close()


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python scoreboard.py host",
        description="Host a live workshop: serve the projector page and collect every participant's results "
                    "as their tests turn green (participants join with `watch KATA --join URL --token T`).",
        epilog="Ctrl-C stops the host and writes the board; the same command resumes the session and its "
               "clock. The README's Workshops section explains a room's setup.")
    parser.add_argument("kata", help="the kata of the session: id, number or name (01_tensor, 1, tensor)")
    parser.add_argument("--minutes", type=float, default=None, metavar="M",
                        help="length of the session (default: the kata's workshop minutes); on a resumed "
                             "session, a new length counted from the same start")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, metavar="P",
                        help=f"the port to serve on (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--bind", default=DEFAULT_BIND, metavar="ADDRESS",
                        help=f"the address to serve on (default {DEFAULT_BIND}: this machine only); "
                             "0.0.0.0 serves every network this machine is on, the room's included")
    parser.add_argument("--folder", type=Path, default=None, metavar="DIR",
                        help="where the session is kept (default: workshop/<kata>)")
    parser.add_argument("--new", action="store_true",
                        help="start a new session even if the folder holds one (that one is moved aside)")
    parser.add_argument("--grace", type=float, default=GRACE_SECONDS, metavar="SECONDS",
                        help=f"results still accepted after the time is up (default {GRACE_SECONDS:g})")
    parser.add_argument("--refresh", type=int, default=PAGE_REFRESH, metavar="SECONDS",
                        help=f"how often the projector page reloads itself (default {PAGE_REFRESH})")
    parser.add_argument("--request-timeout", type=float, default=REQUEST_SECONDS, metavar="SECONDS",
                        help=f"how long one request may take to arrive (default {REQUEST_SECONDS:g})")
    args = parser.parse_args(argv)
    if args.minutes is not None and not (0 < args.minutes <= 24 * 60):
        parser.error(f"--minutes must be more than 0 and at most a day, got {args.minutes:g}")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0 to 65535, got {args.port}")
    if args.grace < 0 or args.refresh < 1 or args.request_timeout <= 0:
        parser.error("--grace must be 0 or more, --refresh at least 1, --request-timeout positive")
    return args


def _hold(folder: Path):
    """Lock the session folder for as long as this host runs: two hosts must not share one."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = open(folder.parent / f".{folder.name}.host-lock", "a")
    if fcntl is None:
        return lock
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise ValueError(f"another host is serving {folder} already") from None
    return lock


def join_command(workshop: Workshop, url: str, token: str) -> str:
    """What participants type (with the session's length when it is not the kata's usual one)."""
    extra = f" --minutes {workshop.minutes:g}" if workshop.minutes != workshop.target.minutes else ""
    return f"python scoreboard.py watch {workshop.target.id} --join {url} --token {token}{extra}"


def _banner(workshop: Workshop, said: str, url: str, host: str, bind: str) -> list[str]:
    target, now = workshop.target, time.time()
    lines = [f"TinyTorch Katas · workshop host · {target.label} · {workshop.clock_line(now)}", said, "",
             "Participants type:", f"  {join_command(workshop, url, workshop.token)}", "",
             f"Projector page:  {url}/",
             f"Standings JSON:  curl -H \"Authorization: Bearer {workshop.token}\" {url}{STANDINGS_PATH}",
             f"Session folder:  {workshop.folder}/ (results/ now; board.html and board.json when it stops)",
             "Ctrl-C stops the host; the same command resumes the session."]
    if bind in ("127.0.0.1", "localhost", "::1"):
        lines += ["", f"Only this machine can join (the host is bound to {bind}). To open it to the room, "
                      "add --bind 0.0.0.0 (every network of this machine) or --bind <this machine's address>."]
    elif bind in ("0.0.0.0", "", "::"):
        lines += ["", f"Serving on every network of this machine; {host} is its "
                      "address on the default route. If participants cannot reach it, use the address of the "
                      "room's network (ip addr, ipconfig) in the join command."]
    return lines


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        target = find_target(manifest_module.load(), args.kata)
    except (OSError, manifest_module.ManifestError) as error:
        print(f"cannot read the kata manifest {manifest_module.MANIFEST_PATH}: {error}", file=sys.stderr)
        return 2
    except KeyError as error:
        print(error.args[0] if error.args else error, file=sys.stderr)
        return 2
    if target.kind != KATA:
        print(f"{target.id} is a milestone; a workshop hosts a kata.", file=sys.stderr)
        return 2
    folder = args.folder or Path("workshop") / target.id
    try:
        lock = _hold(folder)
    except (ValueError, OSError) as error:
        print(error, file=sys.stderr)
        return 2
    try:  # the port first: a session starts its clock only once it can be served
        server = HostServer((args.bind, args.port), None, args.request_timeout)
    except OSError as error:
        print(f"cannot serve on {args.bind}:{args.port}: {error.strerror or error}"
              + (" (another host running? choose another --port)" if "in use" in str(error) else ""),
              file=sys.stderr)
        return 2
    try:
        workshop, said = Workshop.open(folder, target, args.minutes, args.grace, args.new)
    except (ValueError, OSError) as error:
        server.server_close()
        print(error, file=sys.stderr)
        return 2
    server.workshop = workshop
    host = room_address(args.bind)
    url = f"http://{f'[{host}]' if ':' in host else host}:{server.server_address[1]}"
    server.join_line = f"Join: {join_command(workshop, url, '(ask the host)')}"
    server.refresh = args.refresh
    server.on_tick = _clock_keeper(workshop)
    # A stop signal (Ctrl-C too: a host started in the background of a script would otherwise ignore
    # it) asks the serving loop to end, from a thread of its own; nothing is raised in the middle of
    # whatever the loop was doing. Installed before the banner, which tells a script the host is up.
    stopping = threading.Event()

    def stop(signum, frame):
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, name="host-stop", daemon=True).start()

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    print("\n".join(_banner(workshop, said, url, host, args.bind)), flush=True)
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        pass
    finally:
        for signum in STOP_SIGNALS:  # the board is written whole, whatever is pressed now
            signal.signal(signum, signal.SIG_IGN)
        server.close_connections()
        server.server_close()  # waits for the requests under way: what they acknowledge is on disk
    _write_board(workshop, final=workshop.state() == ENDED)
    for signum, handler in previous.items():
        signal.signal(signum, handler)
    lock.close()
    return 0


def _clock_keeper(workshop: Workshop):
    """Called from the serving loop: says when the time is up, and writes the final board at the end."""
    said = {workshop.state()}

    def tick():
        state = workshop.state()
        if state in said:
            return
        said.add(state)
        if state == TIME_UP:
            workshop.log(f"Time is up. Results are accepted for {workshop.grace:g} s more (the last runs).")
        elif state == ENDED:
            _write_board(workshop, final=True)
            workshop.log("The page shows the final standings until Ctrl-C.")
    return tick


def _write_board(workshop: Workshop, final: bool) -> None:
    try:
        html_path, json_path = workshop.write_board()
    except OSError as error:
        workshop.log(f"cannot write the board in {workshop.folder}: {error}")
        return
    ranked = workshop.ranked()
    text = leaderboard.render_text(ranked, [], workshop.target.id) if ranked else "No participant has sent a result."
    what = "Final board" if final else "The board so far (the same command resumes the session)"
    workshop.log(f"{what}:\n{text}\nWritten: {html_path}, {json_path}, and the results in {workshop.results_dir}/ "
                 f"(python scoreboard.py leaderboard {workshop.results_dir} reads them).")
