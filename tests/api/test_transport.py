"""Transport: keep-alive, HTTP->HTTPS redirect, TLS versions, the operator
listener, the body size limit."""
import http.client
import json
import os
import re
import select
import socket
import ssl
import subprocess
import threading
import time

import pytest
import requests

from fvtest import Api, body_of, describe, expect, expect_error, golden

pytestmark = [pytest.mark.local,
              pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")]


def unverified_ctx():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


# ------------------------------------------------------------------ keep-alive

def test_keep_alive_reuses_connection(server, node, api):
    conn = http.client.HTTPSConnection("127.0.0.1", server.https_port, context=unverified_ctx(),
                                       timeout=10)
    hdrs = {"Authorization": f"Zoho-oauthtoken {node.tokens['all']}"}
    path = api.data_path("report", "All_Items") + "?max_records=200"
    conn.request("GET", path, headers=hdrs)
    r1 = conn.getresponse()
    body1 = r1.read()
    assert r1.status == 200, body1[:300]
    assert (r1.getheader("Connection") or "").lower() != "close", "server closed keep-alive"
    sock1 = conn.sock
    assert sock1 is not None, "connection was closed after the first response"
    port1 = sock1.getsockname()[1]
    conn.request("GET", path, headers=hdrs)
    r2 = conn.getresponse()
    r2.read()
    assert r2.status == 200
    assert conn.sock is sock1 and conn.sock.getsockname()[1] == port1, \
        "second request went over a new TCP connection"
    # an error response keeps the connection too
    conn.request("GET", api.data_path("report", "NoSuchReport"), headers=hdrs)
    r3 = conn.getresponse()
    r3.read()
    assert r3.status == 404
    conn.request("GET", path, headers=hdrs)
    r4 = conn.getresponse()
    r4.read()
    assert r4.status == 200 and conn.sock is sock1, "connection dropped after a 404"
    conn.close()


def test_keep_alive_requests_session_pool(node):
    api = node.api()
    pool_conns = []
    for _ in range(3):
        r = api.meta(api.owner, "shop", "forms")
        expect(r, 200, 3000)
        pool = api.s.get_adapter(api.base).poolmanager.connection_from_url(api.base)
        pool_conns.append(pool.num_connections)
    assert pool_conns == [1, 1, 1], f"urllib3 opened {pool_conns[-1]} connections for 3 requests"


# ------------------------------------------------------------------ plain HTTP

@pytest.mark.parametrize("method", ["GET", "POST", "PATCH", "DELETE"])
def test_http_port_redirects_and_serves_no_data(server, node, uniq, method):
    api = node.api()
    [rid] = api.add_ok("Item", [{"Title": "http", "Marker": uniq}])
    path = api.data_path("report", "All_Items", rid) + "?field_config=all"
    r = requests.request(method, server.http_url(path), allow_redirects=False, timeout=10,
                         headers={"Authorization": f"Zoho-oauthtoken {node.tokens['all']}"},
                         json={"data": {"Title": "changed"}} if method != "GET" else None)
    assert r.status_code in (301, 308), f"{method} on HTTP: {r.status_code} {r.text[:200]}"
    if method != "GET":
        assert r.status_code == 308, "a redirect of a non-GET must keep the method (308)"
    loc = r.headers.get("Location", "")
    assert loc == f"https://127.0.0.1:{server.https_port}{path}", f"Location: {loc!r}"
    assert uniq not in r.text and rid not in r.text.replace(path, ""), \
        f"HTTP port leaked data: {r.text[:300]}"
    rec = api.get_ok("All_Items", rid)
    assert rec["Title"] == "http", "a request on the HTTP port changed data"


def test_http_port_no_tls(server):
    """The HTTP port speaks plain HTTP (a TLS hello gets no TLS answer)."""
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=5) as s:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            unverified_ctx().wrap_socket(s).do_handshake()


# ------------------------------------------------------------------ TLS

def tls_ctx(version):
    c = unverified_ctx()
    c.set_ciphers("ALL:@SECLEVEL=0")
    c.minimum_version = version
    c.maximum_version = version
    return c


def handshake(port, version):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with tls_ctx(version).wrap_socket(s) as t:
            return t.version()


@pytest.fixture(scope="module")
def tls11_control(tmp_path_factory):
    """Prove this client can speak TLS 1.1 at all (else a refusal would pass
    vacuously): handshake with a local TLS-1.1-only server."""
    d = tmp_path_factory.mktemp("tls11")
    key, crt = d / "k.pem", d / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.set_ciphers("ALL:@SECLEVEL=0")
    sctx.minimum_version = sctx.maximum_version = ssl.TLSVersion.TLSv1_1
    sctx.load_cert_chain(str(crt), str(key))
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)

    def serve():
        conn, _ = ls.accept()
        try:
            sctx.wrap_socket(conn, server_side=True).close()
        except (ssl.SSLError, OSError):
            pass
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        v = handshake(ls.getsockname()[1], ssl.TLSVersion.TLSv1_1)
    except (ssl.SSLError, OSError) as e:
        pytest.skip(f"this Python/OpenSSL cannot speak TLS 1.1 ({e}); cannot test refusal")
    finally:
        ls.close()
    assert v == "TLSv1.1"


@pytest.mark.parametrize("which", ["https", "operator"])
def test_tls_1_1_refused(server, tls11_control, which):
    port = server.https_port if which == "https" else server.operator_port
    with pytest.raises((ssl.SSLError, ConnectionError)):
        v = handshake(port, ssl.TLSVersion.TLSv1_1)
        pytest.fail(f"{which} listener accepted {v}")


@pytest.mark.parametrize("which", ["https", "operator"])
@pytest.mark.parametrize("version,name", [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
                                          (ssl.TLSVersion.TLSv1_3, "TLSv1.3")])
def test_tls_1_2_and_1_3_accepted(server, which, version, name):
    port = server.https_port if which == "https" else server.operator_port
    assert handshake(port, version) == name


def test_served_certificate_is_data_dir_cert(server):
    pem = (server.data_dir / "tls" / "cert.pem").read_text()
    first = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", pem, re.S)
    assert first, "no certificate in <data>/tls/cert.pem"
    want = ssl.PEM_cert_to_DER_cert(first.group(0))
    for port in (server.https_port, server.operator_port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            with unverified_ctx().wrap_socket(s) as t:
                assert t.getpeercert(binary_form=True) == want


# ------------------------------------------------------------------ operator

def test_operator_health_and_ready(server):
    for path in ("/healthz", "/readyz"):
        r = requests.get(server.op_url(path), verify=False, timeout=5)
        assert r.status_code == 200, f"{path}: {r.status_code} {r.text[:200]}"


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        assert m, f"not Prometheus text: {line!r}"
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def test_operator_metrics(server, api):
    r0 = requests.get(server.op_url("/metrics"), verify=False, timeout=5)
    assert r0.status_code == 200 and r0.headers.get("Content-Type", "").startswith("text/plain")
    before = parse_metrics(r0.text)
    n_log = len(server.log_records())
    for _ in range(3):
        expect(api.report("All_Empty"), 200, 9220)
    deadline = time.monotonic() + 3
    while True:  # log lines and counters are recorded as responses complete
        after = parse_metrics(requests.get(server.op_url("/metrics"), verify=False,
                                           timeout=5).text)
        grown = {k: v - before.get(k, 0) for k, v in after.items()
                 if k[0] == "formvault_http_requests_total" and v - before.get(k, 0) >= 3}
        reqs = [x for x in server.log_records()[n_log:]
                if "request_id" in x and x.get("tenant") == "acme"]  # not the operator scrape
        if (grown and len(reqs) >= 3) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for name in ("formvault_http_requests_total", "formvault_http_request_duration_seconds_bucket",
                 "formvault_http_request_duration_seconds_count", "process_resident_memory_bytes",
                 "process_start_time_seconds", "formvault_uptime_seconds"):
        assert any(k[0] == name for k in after), f"/metrics lacks {name}"
    assert grown, "no formvault_http_requests_total series grew by 3"
    # the route label is the access log's route for those requests
    routes = {x.get("route") for x in reqs if x.get("status") == 200}
    assert len(routes) == 1, f"access log routes for 3 identical requests: {routes}"
    route = routes.pop()
    assert route and route != "other"
    labelled = [k for k in grown if f'route="{route}"' in k[1] and 'status="200"' in k[1]]
    assert labelled, f"no series for route={route!r} status=200 in {list(grown)}"


def test_operator_has_no_api(server, node, api):
    path = api.data_path("report", "All_Items")
    r = requests.get(server.op_url(path), verify=False, timeout=5,
                     headers={"Authorization": f"Zoho-oauthtoken {node.tokens['all']}"})
    assert r.status_code == 404, f"operator port served {path}: {r.status_code}"
    assert '"data"' not in r.text
    r = requests.post(server.op_url(api.data_path("form", "Item")), verify=False, timeout=5,
                      headers={"Authorization": f"Zoho-oauthtoken {node.tokens['all']}"},
                      json={"data": [{"Title": "via-operator"}]})
    assert r.status_code == 404
    expect(api.report("All_Items", {"criteria": 'Title == "via-operator"'}), 200, 9280)


def test_public_port_has_no_operator_routes(server):
    for path in ("/healthz", "/readyz", "/metrics"):
        r = requests.get(server.url(path), verify=False, timeout=5)
        assert r.status_code == 404, f"public port served {path}: {r.status_code}"
        assert "formvault_http_requests_total" not in r.text


# ------------------------------------------------------------------ body limit

@pytest.fixture(scope="module")
def small_body_node():
    import fvtest
    s = fvtest.new_node(extra_env={"FORMVAULT_MAX_BODY_BYTES": "2048"})
    tok = s.token("acme")
    yield s, Api(s.base, "acme", "shop", tok)
    s.cleanup()


def assert_nothing(api, marker):
    r = api.report("All_Items", {"criteria": f'Marker == "{marker}"'})
    assert r.status_code == 200 and body_of(r).get("code") in (9220, 9280), \
        f"expected no record (9220/9280)\n  {describe(r)}"


def test_body_over_limit_is_413_3020(small_body_node, uniq):
    s, api = small_body_node
    big = {"data": [{"Title": "big", "Marker": uniq, "Description": "x" * 10000}]}
    r = api.add("Item", None, body=big)
    expect_error(r, 413, 3020)
    assert_nothing(api, uniq)
    # the server keeps serving, and a body just under the limit passes
    small = {"data": [{"Title": "ok", "Marker": uniq, "Description": "y" * 1500}]}
    assert len(json.dumps(small)) < 2048
    golden("add_one", api.add("Item", None, body=small))
    assert s.running()


def test_chunked_body_over_limit_is_413(small_body_node, uniq):
    s, api = small_body_node
    payload = json.dumps({"data": [{"Title": "big", "Marker": uniq,
                                    "Description": "z" * 20000}]}).encode()

    def gen():
        for i in range(0, len(payload), 1000):
            yield payload[i:i + 1000]
    try:
        r = api.request("POST", api.data_path("form", "Item"), data=gen(),
                        headers={"Content-Type": "application/json"})
        expect_error(r, 413, 3020)
    except requests.ConnectionError:
        pass  # closing the connection on an oversized stream is acceptable
    assert_nothing(api, uniq)
    assert s.running()
    expect(api.meta("acme", "shop", "forms"), 200, 3000)


def test_slow_client_does_not_block_others(server, api):
    """A connection that sends half a request does not stall other clients."""
    s = socket.create_connection(("127.0.0.1", server.https_port), timeout=5)
    t = unverified_ctx().wrap_socket(s)
    t.sendall(b"POST " + api.data_path("form", "Item").encode() +
              b" HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"data\":")
    try:
        start = time.monotonic()
        expect(api.report("All_Empty"), 200, 9220)
        assert time.monotonic() - start < 2.0
    finally:
        t.close()


def test_tls_1_2_non_aead_cipher_refused(server):
    """docs/operations.md: AEAD cipher suites only."""
    for cipher in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "AES128-SHA"):
        c = unverified_ctx()
        c.minimum_version = c.maximum_version = ssl.TLSVersion.TLSv1_2
        c.set_ciphers(cipher + ":@SECLEVEL=0")
        with socket.create_connection(("127.0.0.1", server.https_port), timeout=5) as s:
            with pytest.raises((ssl.SSLError, ConnectionError)):
                with c.wrap_socket(s) as t:
                    pytest.fail(f"server accepted {t.cipher()}")
    c = unverified_ctx()
    c.minimum_version = c.maximum_version = ssl.TLSVersion.TLSv1_2
    c.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    with socket.create_connection(("127.0.0.1", server.https_port), timeout=5) as s:
        with c.wrap_socket(s) as t:
            assert "GCM" in t.cipher()[0]


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1"])
def test_self_signed_cert_verifies_for_local_names(server, name):
    """docs/operations.md: the generated certificate is for localhost,
    127.0.0.1 and ::1; a client that pins it can verify the hostname."""
    c = ssl.create_default_context(cafile=str(server.data_dir / "tls" / "cert.pem"))
    with socket.create_connection(("127.0.0.1", server.https_port), timeout=5) as s:
        with c.wrap_socket(s, server_hostname=name) as t:
            assert t.version() in ("TLSv1.2", "TLSv1.3")


def test_tls_key_file_private(server):
    import os
    import stat
    keys = [p for p in (server.data_dir / "tls").iterdir() if "key" in p.name]
    assert keys, "no key file under data_dir/tls"
    for p in keys:
        mode = stat.S_IMODE(os.stat(p).st_mode)
        assert mode & 0o077 == 0, f"{p.name} is mode {oct(mode)}, expected 0600"


# ------------------------------------------------------------------ idle and half-open TLS

def cpu_seconds(pid):
    """utime + stime of a process, in seconds (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_eof(socks, deadline):
    """Wait until the server has closed every socket in socks (EOF or reset)
    or deadline passes; returns {socket: seconds until closed}."""
    start = time.monotonic()
    closed = {}
    while len(closed) < len(socks) and time.monotonic() < deadline:
        ready, _, _ = select.select([s for s in socks if s not in closed], [], [],
                                    max(0.0, min(0.2, deadline - time.monotonic())))
        for s in ready:
            try:
                data = s.recv(4096)
            except ssl.SSLWantReadError:
                continue
            except (OSError, ssl.SSLError):
                data = b""
            if data == b"":
                closed[s] = time.monotonic() - start
    return closed


def test_idle_and_half_open_tls_connections_are_timed_out(make_server):
    """P0 regression: with MHD_USE_TURBO (0.9.75, epoll + TLS), connections
    that never finished the TLS handshake were never timed out and their
    close never noticed (CLOSE-WAIT forever, each holding a slot until the
    limit locked out every client), the pool threads spun, and idle
    keep-alive connections outlived connection_timeout_s. With epoll, a
    partial ClientHello still made the pool thread spin until the timeout."""
    timeout_s = 2
    s = make_server(extra_env={"FORMVAULT_CONNECTION_TIMEOUT_S": str(timeout_s),
                               "FORMVAULT_MAX_CONNECTIONS": "20"})
    api = Api(s.base, "acme", "shop", s.token("acme"))
    expect(api.meta("acme", "shop", "forms"), 200, 3000)

    # An idle keep-alive connection that has had two responses.
    conn = http.client.HTTPSConnection("127.0.0.1", s.https_port, context=unverified_ctx(),
                                       timeout=10)
    for _ in range(2):
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        r.read()
        assert (r.getheader("Connection") or "").lower() != "close", "keep-alive refused"
    ka = conn.sock
    assert ka is not None, "server closed the keep-alive connection after a response"

    cpu0 = cpu_seconds(s.proc.pid)
    started = time.monotonic()
    # Half a ClientHello (record header + start of the handshake message),
    # then silent TCP connections: 30 in all against a limit of 20.
    partial = bytes.fromhex("16030100c8010000c40303") + bytes(20)
    half = []
    for _ in range(5):
        c = socket.create_connection(("127.0.0.1", s.https_port), timeout=5)
        c.sendall(partial)
        half.append(c)
    silent = [socket.create_connection(("127.0.0.1", s.https_port), timeout=5)
              for _ in range(25)]
    try:
        closed = wait_eof(half + silent + [ka], started + timeout_s + 2.5)
        cpu = cpu_seconds(s.proc.pid) - cpu0
        assert ka in closed, f"idle keep-alive connection still open after {timeout_s + 2.5}s"
        assert closed[ka] >= timeout_s - 1.5, f"keep-alive closed too early ({closed[ka]:.1f}s)"
        open_half = sum(c not in closed for c in half)
        open_silent = sum(c not in closed for c in silent)
        assert open_half == 0 and open_silent == 0, \
            f"not closed by the server after {timeout_s + 2.5}s: {open_half} with a partial " \
            f"ClientHello, {open_silent} silent"
        # Idle connections cost no CPU (a spinning pool thread burns ~1 s/s).
        assert cpu < 1.0, f"server used {cpu:.2f}s of CPU while connections sat idle"
    finally:
        for c in half + silent:
            c.close()
        conn.close()
    # Every slot is free again: the limit's worth of fresh TLS clients is served.
    clients = [http.client.HTTPSConnection("127.0.0.1", s.https_port,
                                           context=unverified_ctx(), timeout=5)
               for _ in range(18)]
    try:
        for c in clients:
            c.request("GET", "/healthz")
        for c in clients:
            r = c.getresponse()
            r.read()
            assert r.status == 404
    finally:
        for c in clients:
            c.close()
    expect(api.meta("acme", "shop", "forms"), 200, 3000)
