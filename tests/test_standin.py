"""Tests of the stand-in Thulium server itself, over real loopback HTTP.

The rest of the suite trusts the stand-in to misbehave exactly as asked, so each
fault kind is pinned down here, as seen by ``requests``.
"""

from __future__ import annotations

import base64
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from standin import STATS, Fault, StandIn, sample_statuses
from standin.server import INVALID_JSON_BODY, SYSTEM_STATUSES

ROOT = Path(__file__).resolve().parent.parent
AUTH = ("user", "secret")


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn() as s:
        s.set_statuses("00001", sample_statuses("00001", 5))
        s.set_statuses("00002", sample_statuses("00002", 3, seed=7))
        yield s


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as sess:
        sess.auth = AUTH
        yield sess


def statuses_url(s: StandIn, campaign_id: str) -> str:
    return f"{s.url}/outbounds/{campaign_id}/statuses"


def assert_thulium_error(resp: requests.Response, code: int, message: str) -> None:
    assert resp.status_code == code
    assert resp.headers["Content-Type"] == "application/json"
    doc = resp.json()
    assert doc == {"request_id": doc["request_id"], "errors": [{"message": message, "code": code}]}
    assert doc["request_id"] == resp.headers["X-Request-Id"]
    assert len(doc["request_id"]) == 32


def raw_get(s: StandIn, campaign_id: str) -> socket.socket:
    """Send one authorised GET on a bare socket, for byte-level assertions."""
    host, port = s.url.split("//")[1].split("/")[0].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    token = base64.b64encode(b"user:secret").decode()
    sock.sendall(
        f"GET /api/outbounds/{campaign_id}/statuses HTTP/1.1\r\n"
        f"Host: {host}\r\nAuthorization: Basic {token}\r\n\r\n".encode()
    )
    return sock


def read_all_until(sock: socket.socket, end: bytes) -> bytes:
    """Read until ``end`` has arrived (the stand-in keeps the connection open)."""
    data = b""
    while end not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


# -- sample data ----------------------------------------------------------


def test_sample_statuses_are_deterministic_and_realistic() -> None:
    a = sample_statuses("00001", 20)
    assert a == sample_statuses("00001", 20)
    assert a != sample_statuses("00001", 20, seed=1)
    assert a != sample_statuses("00002", 20)
    assert [st["system_status"] for st in a[:8]] == list(SYSTEM_STATUSES)
    assert [st["system_status"] for st in a[8:16]] == list(SYSTEM_STATUSES)
    ids = [st["status_id"] for st in a]
    assert all(isinstance(i, str) and i.isdigit() for i in ids)
    assert [int(str(i)) for i in ids] == list(range(int(str(ids[0])), int(str(ids[0])) + 20))
    assert [type(st["dictionary_status_id"]) for st in a[:4]] == [int, type(None)] * 2
    assert all(any(ord(c) > 127 for c in str(st["name"])) for st in a)
    assert set(a[0]) == {"status_id", "system_status", "dictionary_status_id", "name"}
    assert sample_statuses("x", 0) == []
    with pytest.raises(ValueError):
        sample_statuses("x", -1)


# -- auth ---------------------------------------------------------------------


def test_good_credentials_get_statuses(standin: StandIn, session: requests.Session) -> None:
    resp = session.get(statuses_url(standin, "00001"), headers={"Accept": "application/json"})
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert int(resp.headers["Content-Length"]) == len(resp.content)
    assert len(resp.headers["X-Request-Id"]) == 32
    assert resp.json() == sample_statuses("00001", 5)
    # Names travel as real UTF-8, not \u escapes.
    assert "Świeży".encode() in resp.content


@pytest.mark.parametrize(
    "auth",
    [None, ("user", "wrong"), ("other", "secret")],
    ids=["missing", "bad-password", "bad-user"],
)
def test_bad_credentials_get_401(standin: StandIn, auth: tuple[str, str] | None) -> None:
    resp = requests.get(statuses_url(standin, "00001"), auth=auth, timeout=5)
    assert_thulium_error(resp, 401, "Unauthorized")
    assert resp.headers["WWW-Authenticate"] == 'Basic realm="thulium"'
    assert standin.requests_for("00001") == 1


@pytest.mark.parametrize(
    "value", ["Bearer abc", "Basic !!!notbase64", "Basic " + base64.b64encode(b"nocolon").decode()]
)
def test_malformed_authorization_gets_401(standin: StandIn, value: str) -> None:
    resp = requests.get(statuses_url(standin, "00001"), headers={"Authorization": value}, timeout=5)
    assert resp.status_code == 401


def test_custom_credentials() -> None:
    with StandIn(user="demo", password="pässwörd") as s:
        s.set_statuses("1", [])
        url = statuses_url(s, "1")
        assert requests.get(url, auth=("demo", "pässwörd"), timeout=5).json() == []
        assert requests.get(url, auth=AUTH, timeout=5).status_code == 401
        utf8 = base64.b64encode("demo:pässwörd".encode()).decode()
        resp = requests.get(url, headers={"Authorization": f"Basic {utf8}"}, timeout=5)
        assert resp.status_code == 200


def test_only_the_exact_password_is_accepted_surrounding_spaces_included() -> None:
    with StandIn(user="demo", password=" spaced ") as s:
        s.set_statuses("1", [])
        url = statuses_url(s, "1")
        assert requests.get(url, auth=("demo", " spaced "), timeout=5).status_code == 200
        for near in ("spaced", " spaced", "spaced ", "  spaced  "):
            assert requests.get(url, auth=("demo", near), timeout=5).status_code == 401


def test_auth_is_checked_before_faults(standin: StandIn, session: requests.Session) -> None:
    standin.add_faults("00001", Fault.status(500))
    url = statuses_url(standin, "00001")
    assert requests.get(url, timeout=5).status_code == 401  # fault not consumed
    assert session.get(url).status_code == 500
    assert session.get(url).status_code == 200
    standin.set_permanent_fault("00001", Fault.reset())
    assert requests.get(url, timeout=5).status_code == 401


# -- routing and per-campaign answers ------------------------------------------


def test_each_campaign_gets_its_own_answer(standin: StandIn, session: requests.Session) -> None:
    assert session.get(statuses_url(standin, "00001")).json() == sample_statuses("00001", 5)
    assert session.get(statuses_url(standin, "00002")).json() == sample_statuses("00002", 3, seed=7)
    standin.set_statuses("00002", [])
    assert session.get(statuses_url(standin, "00002")).json() == []


def test_unknown_and_removed_campaigns_get_404(standin: StandIn, session: requests.Session) -> None:
    assert_thulium_error(session.get(statuses_url(standin, "99999")), 404, "Campaign not found")
    standin.remove("00001")
    assert_thulium_error(session.get(statuses_url(standin, "00001")), 404, "Campaign not found")
    standin.remove("never-existed")  # no error
    assert standin.requests_for("99999") == 1


@pytest.mark.parametrize(
    "path", ["/api/outbounds/00001", "/api/outbounds", "/outbounds/00001/statuses", "/", "/api"]
)
def test_other_paths_get_404(standin: StandIn, session: requests.Session, path: str) -> None:
    base = standin.url.removesuffix("/api")
    assert_thulium_error(session.get(base + path), 404, "Not found")
    assert standin.requests_for("00001") == 0
    assert standin.total_requests == 1


def test_other_methods_get_404(standin: StandIn, session: requests.Session) -> None:
    url = statuses_url(standin, "00001")
    assert_thulium_error(session.post(url, json={"x": 1}), 404, "Not found")
    assert_thulium_error(session.delete(url), 404, "Not found")
    head = session.head(url)
    assert head.status_code == 404 and head.content == b""
    # The connection stayed in sync after a request body and a HEAD.
    assert session.get(url).status_code == 200


def test_query_string_is_ignored(standin: StandIn, session: requests.Session) -> None:
    resp = session.get(statuses_url(standin, "00001"), params={"limit": 5})
    assert resp.status_code == 200
    assert standin.requests_for("00001") == 1


def test_set_body_serves_raw_answer(standin: StandIn, session: requests.Session) -> None:
    standin.set_body(
        "00001", "not json ą", status=203, content_type="text/plain", headers={"X-Extra": "1"}
    )
    url = statuses_url(standin, "00001")
    for _ in range(2):
        resp = session.get(url)
        assert resp.status_code == 203
        assert resp.content == "not json ą".encode()
        assert resp.headers["Content-Type"] == "text/plain"
        assert resp.headers["X-Extra"] == "1"
    standin.set_body("00009", b"[]")
    assert session.get(statuses_url(standin, "00009")).json() == []


# -- faults -------------------------------------------------------------------


def test_fault_status_default_and_custom_bodies(
    standin: StandIn, session: requests.Session
) -> None:
    url = statuses_url(standin, "00001")
    standin.add_faults(
        "00001",
        Fault.status(503),
        Fault.status(500, body="oops", content_type="text/plain", headers={"X-A": "b"}),
        Fault.status(204),
    )
    assert_thulium_error(session.get(url), 503, "Service Unavailable")
    resp = session.get(url)
    assert (resp.status_code, resp.text) == (500, "oops")
    assert resp.headers["Content-Type"] == "text/plain"
    assert resp.headers["X-A"] == "b"
    resp = session.get(url)
    assert (resp.status_code, resp.content) == (204, b"")
    assert session.get(url).json() == sample_statuses("00001", 5)


def test_fault_retry_after(standin: StandIn, session: requests.Session) -> None:
    url = statuses_url(standin, "00001")
    standin.add_faults("00001", Fault.retry_after("2"), Fault.retry_after("7", code=503))
    resp = session.get(url)
    assert_thulium_error(resp, 429, "Too Many Requests")
    assert resp.headers["Retry-After"] == "2"
    resp = session.get(url)
    assert_thulium_error(resp, 503, "Service Unavailable")
    assert resp.headers["Retry-After"] == "7"


def test_fault_queue_is_consumed_in_order(standin: StandIn, session: requests.Session) -> None:
    url = statuses_url(standin, "00001")
    standin.add_faults("00001", Fault.status(500))
    standin.add_faults("00001", Fault.status(502), Fault.html(503))
    codes = [session.get(url).status_code for _ in range(5)]
    assert codes == [500, 502, 503, 200, 200]
    # Faults are per campaign.
    assert session.get(statuses_url(standin, "00002")).status_code == 200


def test_permanent_fault_beats_queue_until_cleared(
    standin: StandIn, session: requests.Session
) -> None:
    url = statuses_url(standin, "00001")
    standin.add_faults("00001", Fault.status(500))
    standin.set_permanent_fault("00001", Fault.status(503))
    assert [session.get(url).status_code for _ in range(3)] == [503, 503, 503]
    standin.set_permanent_fault("00001", None)
    assert [session.get(url).status_code for _ in range(2)] == [500, 200]
    standin.set_permanent_fault("00001", None)  # clearing twice is fine


def test_fault_on_unknown_campaign_then_404(standin: StandIn, session: requests.Session) -> None:
    standin.add_faults("77777", Fault.status(500))
    assert session.get(statuses_url(standin, "77777")).status_code == 500
    assert session.get(statuses_url(standin, "77777")).status_code == 404


def test_fault_delay_trips_client_timeout(standin: StandIn, session: requests.Session) -> None:
    url = statuses_url(standin, "00001")
    standin.add_faults("00001", Fault.delay(1.0))
    start = time.perf_counter()
    with pytest.raises(requests.exceptions.ReadTimeout):
        session.get(url, timeout=(2, 0.2))
    assert time.perf_counter() - start < 0.9
    standin.add_faults("00001", Fault.delay(0.2))
    start = time.perf_counter()
    resp = session.get(url, timeout=5)
    assert time.perf_counter() - start >= 0.2
    assert resp.json() == sample_statuses("00001", 5)


def test_fault_reset_raises_connection_error(standin: StandIn, session: requests.Session) -> None:
    url = statuses_url(standin, "00001")
    standin.add_faults("00001", Fault.reset())
    with pytest.raises(requests.exceptions.ConnectionError) as info:
        session.get(url)
    assert "reset" in str(info.value).lower()
    assert session.get(url).status_code == 200  # recovers on a new connection


def test_fault_reset_sends_nothing_but_rst(standin: StandIn) -> None:
    standin.add_faults("00001", Fault.reset())
    sock = raw_get(standin, "00001")
    with sock, pytest.raises(ConnectionResetError):
        sock.recv(1024)


def test_fault_truncated_raises_chunked_encoding_error(
    standin: StandIn, session: requests.Session
) -> None:
    url = statuses_url(standin, "00001")
    standin.add_faults("00001", Fault.truncated())
    # urllib3 2 enforces Content-Length: IncompleteRead -> ChunkedEncodingError.
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="IncompleteRead"):
        session.get(url)
    assert session.get(url).status_code == 200


def test_fault_truncated_bytes_on_the_wire(standin: StandIn) -> None:
    full = json.dumps(sample_statuses("00001", 5), ensure_ascii=False).encode()
    standin.add_faults("00001", Fault.truncated())
    with raw_get(standin, "00001") as sock:
        data = read_all(sock)  # server closes after the half body
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert f"Content-Length: {len(full)}".encode() in head
    assert body == full[: len(full) // 2]


def test_fault_invalid_json(standin: StandIn, session: requests.Session) -> None:
    standin.add_faults("00001", Fault.invalid_json())
    resp = session.get(statuses_url(standin, "00001"))
    assert resp.status_code == 200
    assert resp.content == (
        b'[{"status_id": "3", "system_status": "TO_CALL", '
        b'"dictionary_status_id": null, "name": "Nowy"}}'
    )
    assert resp.content == INVALID_JSON_BODY
    with pytest.raises(requests.exceptions.JSONDecodeError):
        resp.json()


@pytest.mark.parametrize(
    ("code", "title"), [(502, "502 Bad Gateway"), (504, "504 Gateway Timeout")]
)
def test_fault_html(standin: StandIn, session: requests.Session, code: int, title: str) -> None:
    standin.add_faults("00001", Fault.html() if code == 502 else Fault.html(code))
    resp = session.get(statuses_url(standin, "00001"))
    assert resp.status_code == code
    assert resp.headers["Content-Type"] == "text/html"
    assert resp.text == (
        f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
    )


def test_fault_interim_sends_a_1xx_then_the_real_answer_on_the_same_connection(
    standin: StandIn,
) -> None:
    full = json.dumps(sample_statuses("00001", 5), ensure_ascii=False).encode()
    standin.add_faults("00001", Fault.interim(103, delay=0.2))
    with raw_get(standin, "00001") as sock:
        started = time.monotonic()
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 103 Early Hints\r\n")
        assert first.endswith(b"\r\n\r\n")  # the interim answer alone, no body
        rest = b""
        while not rest.endswith(full):
            rest += sock.recv(65536)
        assert time.monotonic() - started >= 0.2
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")


def test_fault_status_sends_any_reason_and_header_bytes(standin: StandIn) -> None:
    headers = {"Retry-After": "\xb2", "X-Request-Id": "r\x00"}
    standin.add_faults("00001", Fault.status(503, reason="Busy\x00now", headers=headers))
    with raw_get(standin, "00001") as sock:
        data = read_all_until(sock, b"}]}")
    head = data.partition(b"\r\n\r\n")[0] + b"\r\n"
    assert head.startswith(b"HTTP/1.1 503 Busy\x00now\r\n")
    assert b"\r\nRetry-After: \xb2\r\n" in head
    assert head.count(b"X-Request-Id") == 1 and b"X-Request-Id: r\x00\r\n" in head


def test_fault_trickle_sends_one_byte_at_a_time(standin: StandIn) -> None:
    standin.add_faults("00001", Fault.trickle(0.05))
    with raw_get(standin, "00001") as sock:
        sock.settimeout(0.5)
        first = sock.recv(65536)
        time.sleep(0.12)
        more = sock.recv(65536)
    assert first == b"H"
    assert 1 <= len(more) <= 4  # about one byte per 0.05 s


def test_fault_trickle_can_send_the_head_at_once(standin: StandIn) -> None:
    standin.add_faults("00001", Fault.trickle(0.05, headers_first=True))
    with raw_get(standin, "00001") as sock:
        sock.settimeout(0.5)
        head = read_all_until(sock, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert len(head.partition(b"\r\n\r\n")[2]) <= 2


def test_fault_endless_never_ends_the_body(standin: StandIn, session: requests.Session) -> None:
    standin.add_faults("00001", Fault.endless())
    with session.get(statuses_url(standin, "00001"), stream=True) as resp:
        assert resp.status_code == 200
        assert resp.headers["Transfer-Encoding"] == "chunked"
        received = 0
        for chunk in resp.iter_content(65536):
            received += len(chunk)
            if received > 5_000_000:
                break
    assert received > 5_000_000
    assert session.get(statuses_url(standin, "00001")).status_code == 200


def test_fault_gzip_bomb_is_small_on_the_wire_and_huge_inflated(
    standin: StandIn, session: requests.Session
) -> None:
    standin.add_faults("00001", Fault.gzip_bomb(20_000_000))
    with session.get(statuses_url(standin, "00001"), stream=True) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"
        assert int(resp.headers["Content-Length"]) < 100_000
        inflated = sum(len(chunk) for chunk in resp.iter_content(1 << 20))
    assert inflated == 20_000_000


def test_fault_is_frozen_and_validated() -> None:
    fault = Fault.status(500, headers={"A": "b"})
    assert fault == Fault.status(500, headers={"A": "b"})
    assert hash(fault) == hash(Fault.status(500, headers={"A": "b"}))
    with pytest.raises(AttributeError):
        fault.code = 200  # type: ignore[misc]
    with pytest.raises(ValueError):
        Fault.status(42)
    with pytest.raises(ValueError):
        Fault.delay(-1)
    with pytest.raises(ValueError):
        Fault.interim(100)  # 100 Continue is the one interim answer clients already skip
    with pytest.raises(ValueError):
        Fault.trickle(0)


# -- counting and headers ---------------------------------------------------------


def test_request_counts(standin: StandIn, session: requests.Session) -> None:
    standin.add_faults("00001", Fault.status(500), Fault.reset())
    url = statuses_url(standin, "00001")
    session.get(url)
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(url)
    session.get(url)
    requests.get(url, timeout=5)  # 401 still counts
    session.get(statuses_url(standin, "00002"))
    session.get(standin.url + "/elsewhere")
    assert standin.requests_for("00001") == 4
    assert standin.requests_for("00002") == 1
    assert standin.requests_for("00003") == 0
    assert standin.total_requests == 6
    standin.reset_counts()
    assert (standin.requests_for("00001"), standin.total_requests) == (0, 0)
    session.get(url)
    assert (standin.requests_for("00001"), standin.total_requests) == (1, 1)


def test_last_headers(standin: StandIn, session: requests.Session) -> None:
    assert standin.last_headers("00001") == {}
    session.get(
        statuses_url(standin, "00001"),
        headers={"Accept": "application/json", "User-Agent": "thulium-etl/0.1", "x-lower": "v"},
    )
    headers = standin.last_headers("00001")
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"] == "thulium-etl/0.1"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"user:secret").decode()
    assert headers["X-Lower"] == "v"  # names normalised to Title-Case
    headers["Accept"] = "mutated"
    assert standin.last_headers("00001")["Accept"] == "application/json"


# -- lifecycle, latency and performance -----------------------------------------------


def test_url_and_stop_are_well_behaved() -> None:
    s = StandIn()
    with pytest.raises(RuntimeError):
        _ = s.url
    assert s.start() is s
    assert s.start() is s  # already serving: no-op
    url = s.url
    assert url.startswith("http://127.0.0.1:") and url.endswith("/api")
    s.set_statuses("1", [])
    with requests.Session() as sess:
        sess.auth = AUTH
        assert sess.get(f"{url}/outbounds/1/statuses").status_code == 200
        s.stop()
        s.stop()
        # Both the pooled keep-alive connection and new connections are refused.
        with pytest.raises(requests.exceptions.ConnectionError):
            sess.get(f"{url}/outbounds/1/statuses", timeout=2)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{url}/outbounds/1/statuses", auth=AUTH, timeout=2)


def test_latency_is_applied_and_settable(standin: StandIn, session: requests.Session) -> None:
    url = statuses_url(standin, "00001")
    standin.latency = 0.2
    start = time.perf_counter()
    assert session.get(url).status_code == 200
    assert time.perf_counter() - start >= 0.2
    standin.latency = 0.0
    start = time.perf_counter()
    assert session.get(url).status_code == 200
    assert time.perf_counter() - start < 0.2


def test_keep_alive_requests_are_fast(standin: StandIn, session: requests.Session) -> None:
    """Sanity check for TCP_NODELAY + single-write answers, not a benchmark.

    With Nagle and delayed ACK fighting, each keep-alive round trip costs ~40 ms.
    """
    url = statuses_url(standin, "00001")
    session.get(url)  # connect outside the measurement
    n = 50
    start = time.perf_counter()
    for _ in range(n):
        assert session.get(url).status_code == 200
    mean = (time.perf_counter() - start) / n
    assert mean < 0.02, f"mean {mean * 1000:.1f} ms per keep-alive request"


def test_concurrent_clients_overlap(standin: StandIn) -> None:
    """Latency is slept per request in parallel threads, not serialised."""
    standin.latency = 0.05
    url = statuses_url(standin, "00001")
    local = threading.local()
    sessions: list[requests.Session] = []

    def fetch(_: int) -> int:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.auth = AUTH
            sessions.append(local.session)
        return int(local.session.get(url, timeout=10).status_code)

    start = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(fetch, range(160)))
    elapsed = time.perf_counter() - start
    for sess in sessions:
        sess.close()
    assert codes == [200] * 160
    assert standin.requests_for("00001") == 160
    assert elapsed < 2.0, f"{elapsed:.2f}s; serial would be 8s, ideal 0.5s"


def test_cli_serves_generated_campaigns() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "standin", "--port", "0", "--campaigns", "2"]
    args += ["--statuses", "4", "--user", "demo", "--password", "demo"]
    with subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 15)
            assert ready, "stand-in CLI did not print its URL"
            line = proc.stdout.readline().strip()
            assert line.startswith("serving http://127.0.0.1:") and line.endswith("/api")
            url = line.removeprefix("serving ")
            with requests.Session() as sess:
                sess.auth = ("demo", "demo")
                for cid, seed in (("00001", 1), ("00002", 2)):
                    resp = sess.get(f"{url}/outbounds/{cid}/statuses", timeout=5)
                    assert resp.json() == sample_statuses(cid, 4, seed=seed)
                missing = sess.get(f"{url}/outbounds/00003/statuses", timeout=5)
                assert missing.status_code == 404
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


# -- GET /outbounds/stats ---------------------------------------------------------


def test_stats_lists_every_campaign_with_statuses_by_default(
    standin: StandIn, session: requests.Session
) -> None:
    resp = session.get(f"{standin.url}/outbounds/stats")

    assert resp.status_code == 200
    assert resp.json() == [
        {"id": "00001", "records_count": 5, "completion_percent": 0.0},
        {"id": "00002", "records_count": 3, "completion_percent": 0.0},
    ]
    standin.remove("00002")
    assert [c["id"] for c in session.get(f"{standin.url}/outbounds/stats").json()] == ["00001"]


def test_stats_serves_what_set_stats_gives(standin: StandIn, session: requests.Session) -> None:
    active = [{"id": "00007", "records_count": 1324, "completion_percent": 14}]
    standin.set_stats(active)

    assert session.get(f"{standin.url}/outbounds/stats").json() == active
    standin.set_stats(None)
    assert len(session.get(f"{standin.url}/outbounds/stats").json()) == 2


def test_stats_takes_faults_and_counts_requests_like_a_campaign(
    standin: StandIn, session: requests.Session
) -> None:
    standin.add_faults(STATS, Fault.status(503))

    first = session.get(f"{standin.url}/outbounds/stats")
    second = session.get(f"{standin.url}/outbounds/stats")

    assert (first.status_code, second.status_code) == (503, 200)
    assert standin.requests_for(STATS) == 2
    assert session.get(f"{standin.url}/outbounds/stats", auth=("user", "wrong")).status_code == 401
