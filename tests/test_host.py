"""The live workshop's host, run for real: `python scoreboard.py host 01_tensor` on the loopback.

Each host is a subprocess with a folder and a port of its own. Participants are threads
of this process; each connects from an address of its own (127.0.0.N: Linux routes all
of 127/8 to the loopback), so that the host's limits per address apply to them as they
would to laptops in a room. A `watch --join` runs for real too, started at the
beginning and checked at the end, so that it overlaps the load.
"""

from __future__ import annotations

import html
import http.client
import json
import os
import random
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest

from harness import host as host_module
from harness import join, leaderboard, stubs, watch
from harness import manifest as manifest_module
from harness.grades import validate_result
from harness.runs import find_target
from tests.contract import child_environment
from tests.test_leaderboard import find_chromium

pytestmark = [pytest.mark.timeout(60), pytest.mark.xdist_group("host")]

ROOT = manifest_module.ROOT
TENSOR = find_target(manifest_module.load(), "01_tensor")
CHECKPOINTS = [c[0] for c in TENSOR.checkpoints]
REQUEST_TIMEOUT = 1.5  # the hosts' --request-timeout: slow senders are cut off after this
LOAD_SECONDS = 10.0
if not sys.platform.startswith("linux"):
    pytest.skip("the participants use addresses 127.0.0.N, which Linux alone routes", allow_module_level=True)


# -- results ------------------------------------------------------------------------------------

def stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def tensor_result(name: str, done: int, created: float, greens: dict | None = None, started: float | None = None,
                  commit: str | None = None, kata: str = "01_tensor", names=tuple(CHECKPOINTS),
                  impl: str = "student") -> dict:
    """A valid result of kata 01 with its first `done` checkpoints done."""
    greens = greens if greens is not None else {n: stamp(created) for n in names[:done]}
    started = created - 600 if started is None else started
    checkpoints = [{"name": n, "done": i < done, "tests_passed": 3 if i < done else 1, "tests_total": 3,
                    "weight": 1.0, "first_green_at": greens.get(n), "hints_used": 0} for i, n in enumerate(names)]
    state = "done" if done == len(names) else "in progress" if done else "not started"
    data = {"format": "tinytorch-result", "version": 1, "participant": name, "created_at": stamp(created),
            "commit": commit, "impl": impl,
            "katas": [{"id": kata, "kind": "kata", "title": "Tensor", "state": state, "reason": None,
                       "checkpoints_done": done, "checkpoints_total": len(names), "started_at": stamp(started),
                       "elapsed_seconds": None, "checkpoints": checkpoints}],
            "capabilities": [],
            "total": {"checkpoints_done": done, "checkpoints_total": len(names), "score": float(done),
                      "max_score": float(len(names))}}
    assert validate_result(data) == [], validate_result(data)
    return data


# -- a host in a subprocess ------------------------------------------------------------------------

@dataclass
class Host:
    folder: Path
    process: subprocess.Popen
    lines: list = field(default_factory=list)
    port: int = 0
    token: str = ""

    @property
    def out(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while text not in self.out:
            if time.monotonic() > deadline or self.process.poll() is not None:
                time.sleep(0.2)  # the reader may be a moment behind
                assert text in self.out, f"the host never printed {text!r}; it printed:\n{self.out}"
                return
            time.sleep(0.02)

    def stop(self, signum=signal.SIGINT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=20)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


STARTED: list[Host] = []


def start_host(folder: Path, port: int = 0, *extra: str) -> Host:
    process = subprocess.Popen(
        [sys.executable, "scoreboard.py", "host", "01_tensor", "--folder", str(folder), "--port", str(port),
         "--minutes", "30", "--request-timeout", str(REQUEST_TIMEOUT), *extra],
        cwd=ROOT, env=child_environment(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, encoding="utf-8")
    host = Host(folder, process)
    STARTED.append(host)

    def read():
        for line in process.stdout:
            host.lines.append(line)
    threading.Thread(target=read, daemon=True).start()
    host.wait_for("Projector page:")
    host.port = int(re.search(r"Projector page: +http://127\.0\.0\.1:(\d+)/", host.out)[1])
    host.token = re.search(r"--token ([0-9a-f]+)", host.out)[1]
    return host


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def _no_host_outlives_the_tests():
    yield
    for host in STARTED:
        host.kill()


# -- speaking to it -------------------------------------------------------------------------------

@dataclass
class Answer:
    status: int
    body: dict
    headers: dict
    seconds: float
    text: str = ""


def call(host: Host, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
         source: str = "127.0.0.1", timeout: float = 15) -> Answer:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=timeout, source_address=(source, 0))
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
    finally:
        connection.close()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = {}
    return Answer(response.status, parsed if isinstance(parsed, dict) else {}, dict(response.getheaders()),
                  time.perf_counter() - started, text)


def auth(host: Host, key: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {host.token}", "Content-Type": "application/json"}
    if key:
        headers[join.KEY_HEADER] = key
    return headers


def post(host: Host, result, key: str | None, source: str = "127.0.0.1", headers: dict | None = None) -> Answer:
    body = result if isinstance(result, bytes) else json.dumps(result, ensure_ascii=False).encode("utf-8")
    return call(host, "POST", join.RESULTS_PATH, body, headers or auth(host, key), source)


def standings(host: Host) -> dict:
    answer = call(host, "GET", join.STANDINGS_PATH, headers=auth(host))
    assert answer.status == 200, answer.text
    return answer.body


def raw_exchange(host: Host, chunks: list, source: str, pause: float = 0.0, half_close: bool = False,
                 seconds: float = 10) -> tuple[int, str, float]:
    """Send `chunks` over a bare socket (`pause` between them), and read the answer: (status, text, seconds)."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", host.port), timeout=seconds, source_address=(source, 0)) as sock:
        try:
            for chunk in chunks:
                if select.select([sock], [], [], 0)[0]:  # the host has answered (or hung up): stop sending
                    break
                sock.sendall(chunk)
                time.sleep(pause)
        except OSError:  # the host cut a slow sender off: its answer is still to be read
            pass
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    text = received.decode("utf-8", "replace")
    match = re.match(r"HTTP/1\.\d (\d{3})", text)
    return (int(match[1]) if match else 0), text, time.perf_counter() - started


def head(host: Host, path: str, length: int, extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {host.token}\r\nContent-Type: application/json"
            f"\r\nContent-Length: {length}\r\n{extra}\r\n").encode()


# -- the room: one host, sixty participants ------------------------------------------------------------

FIRST = ["Ada", "Grace", "Alan", "Barbara", "Edsger", "Frances", "Katherine", "Margaret", "Ken", "Radia", "Hedy",
         "Annie", "Dennis", "Niklaus", "Sophie", "José", "Zoë", "Li Lei", "Ngozi", "Søren"]
LAST = ["Lovelace", "Hopper", "Turing", "Liskov", "Dijkstra", "Allen", "Johnson"]


@dataclass
class Person:
    name: str
    source: str  # the address it sends from
    key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    acked: dict | None = None  # the last result the host acknowledged
    greens: dict = field(default_factory=dict)
    sends: int = 0
    refused: list = field(default_factory=list)


# (i % 20, i % 7) differs for every i below 140: sixty different names, one of them long
PEOPLE = [Person(f"{FIRST[i % 20]} {LAST[i % 7]}" + (" Featherstonehaugh-Smythe" if i == 37 else ""),
                 f"127.0.0.{10 + i}") for i in range(60)]
SESSION_CLOCK = time.time() - 120  # every participant's kata clock started two minutes before the tests


def send_as(person: Person, host: Host, done: int) -> Answer:
    now = time.time()
    for name in CHECKPOINTS[:done]:
        person.greens.setdefault(name, stamp(now))
    person.sends += 1
    result = tensor_result(person.name, done, now, dict(person.greens), SESSION_CLOCK,
                           commit=f"{person.source}#{person.sends}")  # names who sent it: nothing crosses over
    answer = post(host, result, person.key, person.source)
    if answer.status == 200:
        person.acked = result
    else:
        person.refused.append((answer.status, answer.body.get("error")))
    return answer


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    """A host with the sixty participants joined, each with a first result."""
    host = start_host(tmp_path_factory.mktemp("room"))
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda person: send_as(person, host, 0), PEOPLE))
    assert [a.status for a in answers] == [200] * 60, [a.body for a in answers if a.status != 200]
    yield host
    assert host.stop() == 0, host.out
    assert (host.folder / "board.html").is_file() and (host.folder / "board.json").is_file()


# -- watch --join, from a host that is down to one that is up: started first, checked last ----------

def pristine_copy(folder: Path) -> Path:
    """A copy of tinytorch/ with kata 01's pristine stub, for a watch to run."""
    shutil.copytree(ROOT / "tinytorch", folder / "tinytorch", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    kata = manifest_module.load().kata("01_tensor")
    (folder / "tinytorch" / "tensor.py").write_text(
        stubs.make_stub(kata.reference_module.read_text(encoding="utf-8"), kata.module), encoding="utf-8")
    return folder / "tinytorch"


def watch_with_a_host_down(folder: Path) -> dict:
    port = free_port()
    first = start_host(folder / "session", port)  # to learn the session's token; then the host goes away
    assert first.stop() == 0
    (folder / "tmp").mkdir()
    env = {k: v for k, v in child_environment().items() if not k.startswith(("TINYTORCH_", "PYTEST_"))}
    env.update(TINYTORCH_NAME="Ada Tester", TINYTORCH_STUDENT_DIR=str(pristine_copy(folder)),
               TINYTORCH_PROGRESS_DIR=str(folder / "progress"), TMPDIR=str(folder / "tmp"))
    process = subprocess.Popen([sys.executable, "scoreboard.py", "watch", "01_tensor", "--minutes", "2",
                                "--join", f"http://127.0.0.1:{port}", "--token", first.token],
                               cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, encoding="utf-8")
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
    try:
        deadline = time.monotonic() + 40
        # Both the host's absence and the kata's first run on screen (on a busy machine the run ends later).
        while not all(text in "".join(lines) for text in ("host unreachable", "Status: idle")) \
                and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        down = "".join(lines)
        second = start_host(folder / "session", port)  # the same session, back on the same port
        up_at = time.monotonic()
        arrived = None
        while time.monotonic() < up_at + 30 and arrived is None:
            found = [e for e in standings(second)["standings"] if e["participant"] == "Ada Tester"]
            arrived = time.monotonic() - up_at if found else None
            time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
        time.sleep(0.2)
        final = standings(second)
        second_out = second.out
        assert second.stop() == 0
    finally:
        if process.poll() is None:
            process.kill()
    return {"code": code, "down": down, "out": "".join(lines), "arrived": arrived, "standings": final,
            "result": json.loads((folder / "progress" / "results" / "ada-tester-01_tensor.json").read_text()),
            "host": second_out}


def a_session_that_ends(folder: Path) -> dict:
    """A six-second session with two seconds of grace: a result in time, one in the grace, one too late."""
    host = start_host(folder, 0, "--minutes", "0.1", "--grace", "2")
    person = Person("Last Minute", "127.0.4.1")
    seen = {"in time": send_as(person, host, 1)}
    host.wait_for("Time is up.")
    seen["in the grace"] = send_as(person, host, 2)
    host.wait_for("Final board")
    seen["too late"] = send_as(person, host, 3)
    seen["page"] = call(host, "GET", "/")
    seen["board"] = json.loads((folder / "board.json").read_text(encoding="utf-8"))
    seen["code"] = host.stop()
    seen["leaderboard"] = leaderboard.gather([str(folder / "results")], "01_tensor")
    seen["out"] = host.out
    return seen


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory):
    """Scenarios that mostly wait, started together in the background (the load test starts them)."""
    pool = ThreadPoolExecutor(max_workers=2)
    yield {"watch": pool.submit(watch_with_a_host_down, tmp_path_factory.mktemp("watch-join")),
           "ending": pool.submit(a_session_that_ends, tmp_path_factory.mktemp("ending"))}
    pool.shutdown(wait=True)


# -- sixty participants at once ------------------------------------------------------------------------

LATENCIES: list[float] = []


@pytest.mark.timeout(90)
def test_sixty_participants_at_once_lose_nothing_and_cross_nothing(room, scenarios):
    """For about ten seconds each participant sends a result every half second or so, its checkpoints
    going green at its own pace; meanwhile the projector page is fetched four times a second."""
    stop = threading.Event()
    page_failures = []

    def participant(person: Person, seed: int):
        pace = random.Random(seed)
        done = 0
        while not stop.is_set():
            if pace.random() < 0.15:
                done = min(len(CHECKPOINTS), done + 1)
            send_as(person, room, done)
            stop.wait(pace.uniform(0.2, 0.8))

    def projector():
        while not stop.is_set():
            answer = call(room, "GET", "/", source="127.0.0.2")
            LATENCIES.append(answer.seconds)
            if answer.status != 200 or room.token in answer.text:
                page_failures.append((answer.status, answer.text[:200]))
            stop.wait(0.25)

    threads = [threading.Thread(target=participant, args=(p, i)) for i, p in enumerate(PEOPLE)]
    threads.append(threading.Thread(target=projector))
    for thread in threads:
        thread.start()
    time.sleep(LOAD_SECONDS)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)

    assert [(p.name, p.refused) for p in PEOPLE if p.refused] == []
    sends = sum(p.sends for p in PEOPLE)
    assert min(p.sends for p in PEOPLE) >= 5, [p.sends for p in PEOPLE]
    held = {entry["participant"]: entry for entry in standings(room)["standings"]}
    assert sorted(held) == sorted(p.name for p in PEOPLE)
    for person in PEOPLE:
        entry, acked = held[person.name], person.acked
        assert (entry["checkpoints_done"], entry["created_at"]) == \
            (acked["total"]["checkpoints_done"], acked["created_at"]), person.name
    files = {}
    for path in (room.folder / "results").glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        files[data["participant"]] = data
    assert files == {p.name: p.acked for p in PEOPLE}  # each file is exactly its sender's last acknowledged result

    assert page_failures == []
    ordered = sorted(LATENCIES)
    p50, p95, worst = ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.95)], ordered[-1]
    print(f"\n{sends} results from 60 participants in {LOAD_SECONDS:g} s ({sends / LOAD_SECONDS:.0f} a second); "
          f"the page in {p50 * 1000:.0f} ms (median), {p95 * 1000:.0f} ms (95th percentile), "
          f"{worst * 1000:.0f} ms (slowest) over {len(ordered)} fetches")
    assert len(ordered) >= LOAD_SECONDS * 2
    assert p95 < 2.0 and worst < 5.0, f"the page took {p95:.2f} s (95th percentile), {worst:.2f} s at worst"
    assert "Traceback" not in room.out and "error answering" not in room.out


# -- SIGKILL and a restart ---------------------------------------------------------------------------------

def test_a_killed_host_restarts_with_every_acknowledged_result_and_its_clock(tmp_path):
    port = free_port()
    host = start_host(tmp_path / "session", port)
    clock = standings(host)
    people = [Person(f"Crash Tester {n}", f"127.0.1.{n + 1}") for n in range(12)]
    stop = threading.Event()

    def participant(person: Person):
        done = 0
        while not stop.is_set():
            done = min(len(CHECKPOINTS), done + (person.sends % 2))
            try:
                send_as(person, host, done)
            except (OSError, http.client.HTTPException):  # the host died under this request: not acknowledged
                return
            stop.wait(0.05)

    threads = [threading.Thread(target=participant, args=(p,)) for p in people]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    host.process.send_signal(signal.SIGKILL)  # in the middle of everyone's requests
    host.process.wait(timeout=10)
    stop.set()
    for thread in threads:
        thread.join(timeout=20)
    assert all(p.acked for p in people), [p.sends for p in people]

    again = start_host(tmp_path / "session", port)
    assert "The session resumes: same token, same clock." in again.out and again.token == host.token
    resumed = standings(again)
    assert resumed["started_at"] == clock["started_at"] and resumed["ends_at"] == clock["ends_at"]
    assert resumed["seconds_left"] < clock["seconds_left"] - 1.5  # the clock went on while the host was down
    held = {e["participant"]: e for e in resumed["standings"]}
    for person in people:
        # the host may have written one more result just before it died, never less than acknowledged
        assert held[person.name]["created_at"] >= person.acked["created_at"], person.name
        assert held[person.name]["checkpoints_done"] >= person.acked["total"]["checkpoints_done"], person.name
    assert [p.name for p in (tmp_path / "session").rglob("*") if ".tmp" in p.name] == []  # half-written: removed

    # the keys survived too: the participant goes on, and nobody else can take the name
    assert send_as(people[0], again, 6).status == 200
    intruder = post(again, tensor_result(people[1].name, 6, time.time()), secrets.token_urlsafe(24), "127.0.1.99")
    assert intruder.status == 409 and intruder.body["code"] == "name-taken", intruder.body
    assert again.stop() == 0
    assert "Traceback" not in again.out


# -- hostile requests ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A host that only hostile requests (and one honest participant) speak to."""
    host = start_host(tmp_path_factory.mktemp("guarded"))
    honest = Person("Honest Participant", "127.0.2.1")
    assert send_as(honest, host, 1).status == 200
    held = tensor_result("Held Participant", 3, time.time() - 30, started=time.time() - 600)
    assert post(host, held, "held-participant-key-0123456789", "127.0.2.2").status == 200
    yield host, honest, held
    assert host.stop() == 0, host.out


VALID_TEXT = json.dumps(tensor_result("Mallory Example", 1, time.time() - 5)).encode()


def hostile_bodies():
    """name -> (body, status, words of the reason); each sent with the right token and a fresh key."""
    now = time.time()
    bad_type = json.loads(VALID_TEXT)
    bad_type["katas"][0]["checkpoints_done"] = "1"
    future_green = tensor_result("Mallory Example", 1, now - 60, greens={CHECKPOINTS[0]: stamp(now - 10)})
    late_clock = tensor_result("Mallory Example", 0, now - 60, started=now - 10)
    return {
        "malformed JSON": (b'{"format": "tinytorch-result", version: 1}', 400, "not valid JSON"),
        "deep JSON": (b"[" * 30000 + b"]" * 30000, 400, "nested too deeply"),
        "invalid UTF-8": (VALID_TEXT.replace(b"Mallory", b"Mall\xff\xfery"), 400, "not UTF-8"),
        "NaN": (VALID_TEXT.replace(b'"weight": 1.0', b'"weight": NaN', 1), 400, "NaN is not a number"),
        "a huge number": (VALID_TEXT.replace(b'"tests_total": 3', b'"tests_total": 3' + b"0" * 5000, 1), 400,
                          "too large"),
        "wrong types": (json.dumps(bad_type).encode(), 422, "'checkpoints_done' should be a count"),
        "a markup name": (json.dumps(tensor_result("<script>alert(1)</script>", 1, now)).encode(), 422, "markup"),
        "a control character in a name": (json.dumps(tensor_result("Eve\x1b[2J", 1, now)).encode(), 422,
                                          "control or invisible"),
        "an invisible character in a name": (json.dumps(tensor_result("Eve\u202eevE", 1, now)).encode(), 422,
                                             "control or invisible"),
        "a name too long": (json.dumps(tensor_result("N" * 41, 1, now)).encode(), 422, "at most 40"),
        "another kata": (json.dumps(tensor_result("Mallory Example", 1, now, kata="02_activations")).encode(), 422,
                         "this workshop is 01_tensor"),
        "other checkpoints": (json.dumps(tensor_result("Mallory Example", 1, now, names=("a", "b"))).encode(), 422,
                              "not those of 01_tensor"),
        "a reference run": (json.dumps(tensor_result("Mallory Example", 6, now, impl="reference")).encode(), 422,
                            "reference implementation"),
        "a green after the result": (json.dumps(future_green).encode(), 422, "after the result was made"),
        "a clock after the result": (json.dumps(late_clock).encode(), 422, "after the result was made"),
    }


BODIES = hostile_bodies()


@pytest.mark.parametrize("case", sorted(BODIES))
def test_a_hostile_body_is_refused_with_its_reason(guarded, case):
    host, honest, _ = guarded
    body, status, words = BODIES[case]
    answer = post(host, body, secrets.token_urlsafe(24), "127.0.3.1")
    assert answer.status == status and words in answer.body["error"], (answer.status, answer.body)
    assert answer.body["accepted"] is False
    assert "\x1b" not in host.out and "\u202e" not in host.out  # what a request carried cannot move the cursor
    assert_unaffected(host, honest)


def assert_unaffected(host: Host, honest: Person) -> None:
    """The host answers the page at once and still takes an honest participant's result."""
    assert host.process.poll() is None, host.out
    page = call(host, "GET", "/", source="127.0.2.9")
    assert page.status == 200 and page.seconds < 2.0, page.seconds
    assert send_as(honest, host, min(6, honest.sends)).status == 200, honest.refused


def test_no_token_or_a_wrong_one_is_refused_and_the_token_never_shown(guarded):
    host, honest, _ = guarded
    result = tensor_result("Mallory Example", 1, time.time())
    cases = [({"Content-Type": "application/json"}, "no-token", "no session token"),
             ({"Authorization": "Bearer 0000aaaa0000"}, "wrong-token", "wrong session token"),
             ({"Authorization": f"Basic {host.token}"}, "wrong-token", "wrong session token"),
             ({"Authorization": f"Bearer {host.token}x"}, "wrong-token", "wrong session token")]
    for headers, code, words in cases:
        answer = post(host, result, None, "127.0.3.2", headers=headers)
        assert (answer.status, answer.body["code"]) == (401, code) and words in answer.body["error"], answer.body
        assert answer.headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert call(host, "GET", join.STANDINGS_PATH, source="127.0.3.2").status == 401
    page = call(host, "GET", "/", source="127.0.3.2")
    assert page.status == 200 and host.token not in page.text
    assert "Content-Security-Policy" in page.headers and "<script" not in page.text
    assert "Mallory" not in json.dumps(standings(host))
    assert_unaffected(host, honest)


def test_another_participants_name_and_results_out_of_order_are_refused(guarded):
    host, honest, held = guarded
    now = time.time()
    taken = post(host, tensor_result("held  PARTICIPANT", 6, now), secrets.token_urlsafe(24), "127.0.3.3")
    assert taken.status == 409 and taken.body["code"] == "name-taken" and "taken" in taken.body["error"]
    assert post(host, tensor_result("Held Participant", 6, now), None, "127.0.3.3").status == 409
    key = "held-participant-key-0123456789"
    older = post(host, tensor_result("Held Participant", 4, now - 300), key, "127.0.2.2")
    assert older.status == 409 and "older" in older.body["error"], older.body
    moved = tensor_result("Held Participant", 3, now, greens={CHECKPOINTS[0]: stamp(now - 500)},
                          started=now - 600)
    moved["katas"][0]["started_at"] = held["katas"][0]["started_at"]
    answer = post(host, moved, key, "127.0.2.2")
    assert answer.status == 409 and "never moves" in answer.body["error"], answer.body
    bad_key = post(host, tensor_result("Someone New", 1, now), "short", "127.0.3.3")
    assert bad_key.status == 400 and join.KEY_HEADER in bad_key.body["error"]
    (entry,) = [e for e in standings(host)["standings"] if e["participant"] == "Held Participant"]
    assert entry["checkpoints_done"] == 3 and entry["created_at"] == held["created_at"]
    log = (host.folder / "host.log").read_text(encoding="utf-8")
    assert "refused 127.0.3.3 (held PARTICIPANT): 409 the name 'Held Participant' is taken" in log
    assert_unaffected(host, honest)


def test_oversized_truncated_and_unframed_bodies_are_refused(guarded):
    host, honest, _ = guarded
    status, text, _ = raw_exchange(host, [head(host, "/results", 10_000_000), b"{" * 1000], "127.0.3.4")
    assert status == 413 and "a result is at most 65536" in text, text
    status, text, _ = raw_exchange(host, [head(host, "/results", 2000), VALID_TEXT[:100]], "127.0.3.4",
                                   half_close=True)
    assert status == 400 and "the body ended after 100 of the 2000 bytes announced" in text, text
    no_length = head(host, "/results", 0).replace(b"Content-Length: 0\r\n", b"")
    status, text, _ = raw_exchange(host, [no_length], "127.0.3.4")
    assert status == 411 and "Content-Length" in text, text
    chunked = head(host, "/results", 0, "Transfer-Encoding: chunked\r\n").replace(b"Content-Length: 0\r\n", b"")
    status, text, _ = raw_exchange(host, [chunked + b"5\r\nhello\r\n0\r\n\r\n"], "127.0.3.4")
    assert status == 411 and "chunked" in text, text
    status, text, _ = raw_exchange(host, [b"GARBAGE\r\n\r\n"], "127.0.3.4")
    assert "400 Bad request syntax" in text, text  # not HTTP at all: answered without a status line
    assert call(host, "PUT", "/results", b"{}", auth(host), "127.0.3.4").status == 405
    assert call(host, "GET", "/../../etc/passwd", source="127.0.3.4").status == 404
    assert_unaffected(host, honest)


def test_slow_senders_and_half_open_connections_time_out(guarded):
    """A request that trickles in, a body that stops halfway and a connection that says nothing are each
    answered 408 once --request-timeout has passed; they run at once, and the host serves others meanwhile."""
    host, honest, _ = guarded
    trickle = [c.encode() for c in "POST /results HTTP/1.1\r\nHost: x\r\nX-Slow: " + "s" * 40]
    cases = {"trickling headers": dict(chunks=trickle, pause=0.15),
             "a stalled body": dict(chunks=[head(host, "/results", 500), VALID_TEXT[:100]]),
             "silence": dict(chunks=[])}
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(raw_exchange, host, source=f"127.0.3.{10 + i}", **kwargs)
                   for i, (name, kwargs) in enumerate(cases.items())}
        assert_unaffected(host, honest)
        answers = {name: future.result() for name, future in futures.items()}
    for name, (status, text, seconds) in answers.items():
        assert status == 408 and f"within {REQUEST_TIMEOUT:g} s" in text, (name, text)
        assert REQUEST_TIMEOUT - 0.1 < seconds < REQUEST_TIMEOUT + 3, (name, seconds)
    assert "100 of 500 bytes came" in answers["a stalled body"][1]
    assert_unaffected(host, honest)


def test_a_flood_from_one_address_is_limited_without_affecting_others(guarded):
    """Four threads fetch the page from one address as fast as they can, until the host says 429; another
    address fetches it meanwhile, every tenth request."""
    host, honest, _ = guarded
    answers, others, limited = [], [], threading.Event()

    def flood():
        while not limited.is_set() and len(answers) < 1000:
            answer = call(host, "GET", "/", source="127.0.3.20")
            answers.append(answer)
            if answer.status == 429:
                limited.set()
            if len(answers) % 10 == 0:
                others.append(call(host, "GET", "/", source="127.0.3.21"))

    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(flood) for _ in range(4)]:
            future.result()
    statuses = [a.status for a in answers]
    assert set(statuses) == {200, 429} and statuses.count(200) >= 40, statuses  # the burst, then the limit
    refused = next(a for a in answers if a.status == 429)
    assert "too many requests from 127.0.3.20" in refused.body["error"] and int(refused.headers["Retry-After"]) >= 1
    assert others and all(o.status == 200 for o in others) and max(o.seconds for o in others) < 2.0
    # too many connections at once from one address: the ninth is turned away, others are not
    idle = [socket.create_connection(("127.0.0.1", host.port), source_address=("127.0.3.22", 0)) for _ in range(8)]
    try:
        time.sleep(0.2)
        status, text, _ = raw_exchange(host, [b"GET / HTTP/1.0\r\n\r\n"], "127.0.3.22")
        assert status == 503 and "too many connections open at once from 127.0.3.22" in text, text
    finally:
        for sock in idle:
            sock.close()
    assert_unaffected(host, honest)
    log = host.out
    assert log.count("refused 127.0.3.20: 429") == 1  # a flood is logged once, not once per request


# -- the projector page in a browser -----------------------------------------------------------------------

def chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """A headless Chromium with a window of 1280x800, a fresh profile and nothing fetched from anywhere."""
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
               f"--user-data-dir={profile}", "--window-size=1280,800", "--virtual-time-budget=2000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=child_environment(HOME=profile),
                          stdin=subprocess.DEVNULL, start_new_session=True)


# The page's own policy forbids scripts, so the browser measures a copy without it, framed at
# exactly 1280x800 (a headless window's viewport is smaller than the window); the copy posts each
# participant's box to the frame around it, whose DOM Chromium prints.
MEASURE = """<script>
const names = [...document.querySelectorAll('td.name, ol.rest .name')].map(el => {
  const box = el.getBoundingClientRect();
  return {text: el.textContent, left: box.left, top: box.top, right: box.right, bottom: box.bottom,
          font: parseFloat(getComputedStyle(el).fontSize), clipped: el.scrollWidth > el.clientWidth + 1};
});
parent.postMessage(JSON.stringify({width: innerWidth, height: innerHeight, names}), '*');
</script>"""
FRAME = """<!DOCTYPE html><html><body style="margin:0">
<iframe src="page.html" style="border:0; width:1280px; height:800px"></iframe><pre id="layout"></pre>
<script>addEventListener('message', e => { document.getElementById('layout').textContent = e.data; });</script>
</body></html>"""


@pytest.mark.timeout(90)
def test_the_projector_page_shows_all_sixty_participants_at_1280_by_800(room, tmp_path):
    browser = find_chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("headless Chromium not found, and CI needs it for this check: apt-get install chromium")
        pytest.skip("headless Chromium not found: install it (apt-get install chromium) to run this check")
    page = call(room, "GET", "/")
    assert page.status == 200 and room.token not in page.text and "<script" not in page.text
    (tmp_path / "board.html").write_text(page.text, encoding="utf-8")
    measured = re.sub(r'<meta http-equiv="(Content-Security-Policy|refresh)"[^>]*>', "", page.text)
    (tmp_path / "page.html").write_text(measured.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    (tmp_path / "frame.html").write_text(FRAME, encoding="utf-8")
    shot = tmp_path / "board.png"
    with ThreadPoolExecutor(max_workers=2) as pool:
        dom = pool.submit(chromium, browser, tmp_path / "profile-dom", "--dump-dom", (tmp_path / "frame.html").as_uri())
        picture = pool.submit(chromium, browser, tmp_path / "profile-shot", f"--screenshot={shot}",
                              (tmp_path / "board.html").as_uri())  # the page itself, as the room sees it
        dom, picture = dom.result(), picture.result()
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="layout">(.+?)</pre>', dom.stdout, re.S)
    assert found, f"the page did not measure itself:\n{dom.stdout[-2000:]}"
    layout = json.loads(html.unescape(found[1]))
    assert (layout["width"], layout["height"]) == (1280, 800)
    shown = {box["text"]: box for box in layout["names"]}
    assert sorted(shown) == sorted(p.name for p in PEOPLE)
    for name, box in shown.items():
        inside = 0 <= box["left"] and box["right"] <= 1280 and 0 <= box["top"] and box["bottom"] <= 800
        assert inside and box["right"] > box["left"], f"{name} is not on the screen: {box}"
        assert box["font"] >= 14, f"{name} is in {box['font']} px type"
        assert len(name) > 20 or not box["clipped"], f"{name} is cut short"
    boxes = list(shown.values())
    for index, one in enumerate(boxes):
        for other in boxes[index + 1:]:
            apart = (one["right"] <= other["left"] or other["right"] <= one["left"]
                     or one["bottom"] <= other["top"] or other["bottom"] <= one["top"])
            assert apart, f"{one['text']} and {other['text']} overlap"
    assert picture.returncode == 0 and shot.stat().st_size > 10_000, picture.stderr[-2000:]
    print(f"\nthe projector page with sixty participants, as Chromium drew it at 1280x800: {shot}")


# -- the participant's side ------------------------------------------------------------------------------------

def test_a_watch_joined_to_a_host_that_is_down_keeps_working_and_delivers_once_it_is_up(scenarios):
    seen = scenarios["watch"].result(timeout=80)
    assert seen["code"] == 0, seen["out"]
    down = seen["down"]
    assert "left] host unreachable (connection refused) · retry in" in down, down
    assert "Status: idle" in down and "0/6" in down  # the kata ran and was shown while the host was down
    assert seen["arrived"] is not None and seen["arrived"] < 20, seen
    print(f"\nthe watch's result reached the host {seen['arrived']:.1f} s after the host came back")
    (entry,) = seen["standings"]["standings"]
    assert entry["participant"] == "Ada Tester" and entry["created_at"] == seen["result"]["created_at"]
    assert "Sent to the workshop host (rank 1 of 1)." in seen["out"], seen["out"]
    assert "Traceback" not in seen["out"] + seen["host"]


def test_when_the_time_is_up_the_last_results_come_in_then_the_final_board_stays(scenarios):
    seen = scenarios["ending"].result(timeout=60)
    assert (seen["in time"].status, seen["in time"].body["state"]) == (200, "running")
    assert (seen["in the grace"].status, seen["in the grace"].body["state"]) == (200, "time is up")
    assert seen["too late"].status == 410 and "results are no longer accepted" in seen["too late"].body["error"]
    assert seen["board"]["state"] == "ended"
    assert [(e["participant"], e["checkpoints_done"]) for e in seen["board"]["standings"]] == [("Last Minute", 2)]
    ranked, skipped = seen["leaderboard"]  # the results folder, as `scoreboard.py leaderboard` reads it
    assert skipped == [] and [(e.participant, e.done) for _, e in ranked] == [("Last Minute", 2)]
    page = seen["page"].text
    assert "final standings" in page and 'http-equiv="refresh"' not in page and "--join" not in page
    assert seen["code"] == 0 and "Traceback" not in seen["out"]


def test_watch_refuses_join_options_that_cannot_work(capsys):
    for args, words in ((["--join", "http://127.0.0.1:9"], "--join and --token go together"),
                        (["--token", "abcdef"], "--join and --token go together"),
                        (["--join", "file:///etc/passwd", "--token", "abcdef"], "the address the host printed"),
                        (["--join", "http://127.0.0.1:9", "--token", "a b"], "--token should be"),
                        (["--join", "http://127.0.0.1:9", "--token", "abcdef", "--impl", "reference"],
                         "refuses the reference")):
        with pytest.raises(SystemExit) as stop:
            watch.main(["01", *args])
        assert stop.value.code == 2 and words in capsys.readouterr().err, args
    assert watch.main(["01", "--join", "http://127.0.0.1:9", "--token", "abcdef", "--name", "<b>Ada</b>"]) == 2
    assert "cannot show the name '<b>Ada</b>'" in capsys.readouterr().err


def test_the_watch_screen_shows_the_host_line_within_its_width(tmp_path):
    link = join.HostLink("http://h:1", "t0k3n", "k" * 20, send=FakeHost([(None, {}, "connection refused")]))
    session = watch.Session(TENSOR, manifest_module.load(), "student", 2.0, "Ada", tmp_path / "out.json", tmp_path,
                            launched=1000.0, link=link)
    link.submit({"n": 1})
    wait_until(lambda: link.failures == 1)
    frame = watch.render_frame(session, running=False, queued=False, width=60, now=1010.0, height=23)
    (line,) = [line for line in frame.splitlines() if line.startswith("host unreachable")]
    assert line == "host unreachable (connection refused) · retry in 1 s", frame
    assert len(line) <= 60


def test_the_join_command_names_the_address_the_host_is_bound_to():
    assert host_module.room_address("10.1.2.3") == "10.1.2.3"
    assert host_module.room_address("0.0.0.0")  # the default route's address, or the host name; nothing is sent


class FakeHost:
    """Stands for the network in HostLink: answers from a list, and records what was sent."""

    def __init__(self, answers):
        self.answers, self.sent = list(answers), []

    def __call__(self, url, token, key, result, timeout=None):
        self.sent.append(result)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def wait_until(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_link_says_connected_last_sent_or_host_unreachable_and_retries():
    fake = FakeHost([(None, {}, "connection refused"), (200, {"rank": 2, "participants": 5}, "")])
    link = join.HostLink("http://h:1", "t0k3n", "k" * 20, send=fake)
    assert link.status() == "host: waiting for a run"
    link.submit({"n": 1})
    wait_until(lambda: link.failures == 1)
    assert link.status() == "host unreachable (connection refused) · retry in 1 s"
    link.submit({"n": 2})  # a newer result replaces the one waiting
    wait_until(lambda: link.sent_at is not None)
    assert fake.sent == [{"n": 1}, {"n": 2}]
    assert link.status() == "host: connected, last sent 0 s ago · rank 2 of 5"
    assert link.status(now=link.sent_at + 12) == "host: connected, last sent 12 s ago · rank 2 of 5"
    assert link.status(now=link.sent_at + 150) == "host: connected, last sent 2 min ago · rank 2 of 5"
    assert link.close(patience=1) is True


def test_the_link_stops_on_a_wrong_token_or_a_taken_name_and_skips_a_refused_result():
    refused = FakeHost([(422, {"error": "a run of the reference implementation"}, ""),
                        (200, {"rank": 1, "participants": 1}, "")])
    link = join.HostLink("http://h:1", "t0k3n", "k" * 20, send=refused)
    link.submit({"n": 1})
    wait_until(lambda: link.refused)
    assert link.pending is None and "refused the last result: a run of the reference" in link.status()
    link.submit({"n": 2})
    wait_until(lambda: link.sent_at is not None)
    assert link.refused == "" and link.close(patience=1)
    for answer, words in (((401, {"error": "wrong session token"}, ""), "refused the token"),
                          ((409, {"code": "name-taken", "error": "the name 'Ada' is taken"}, ""), "is taken"),
                          ((410, {"error": "the session ended at 10:30"}, ""), "host: the session ended")):
        link = join.HostLink("http://h:1", "t0k3n", "k" * 20, send=FakeHost([answer]))
        link.submit({"n": 1})
        wait_until(lambda: link.stopped)
        assert words in link.status() and link.close(patience=0.2) is False


def test_names_and_addresses_a_participant_may_join_with():
    assert join.name_problem("Ada Lovelace") is None and join.name_problem("Søren Kierkegaard") is None
    assert "markup" in join.name_problem("<b>Ada</b>")
    assert "control" in join.name_problem("Ada\x07")
    assert "at most 40" in join.name_problem("x" * 41)
    assert "empty" in join.name_problem("   ")
    assert join.base_url("http://10.0.0.5:8765/") == "http://10.0.0.5:8765"
    for bad in ("file:///etc/passwd", "10.0.0.5:8765", "http://10.0.0.5:8765/results", "http://:80",
                "http://10.0.0.5:port"):
        with pytest.raises(ValueError):
            join.base_url(bad)


def test_a_stop_signal_the_moment_the_host_is_up_ends_it_cleanly(tmp_path):
    """SIGINT or SIGTERM as soon as the banner is out (a script stopping the host at once) ends it with 0."""
    for attempt, signum in enumerate((signal.SIGINT, signal.SIGTERM, signal.SIGINT)):
        host = start_host(tmp_path / f"session-{attempt}")
        started = time.monotonic()
        assert host.stop(signum) == 0, host.out
        assert time.monotonic() - started < 10, host.out
        assert "Traceback" not in host.out
