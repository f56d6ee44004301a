"""Abusive but legal client behaviour: clients that vanish mid-write,
pipelined requests, concurrent batches on two tenants. The server must keep
serving and every record must be whole or absent."""
import json
import socket
import ssl
import threading
import time

import pytest

from fvtest import expect

pytestmark = pytest.mark.local


def tls_socket(port):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return c.wrap_socket(s)


def raw_request(method, path, token, body=None, close=False):
    data = json.dumps(body).encode() if body is not None else b""
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1",
            f"Authorization: Zoho-oauthtoken {token}"]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


def read_responses(sock, n, timeout=10):
    """Read n HTTP/1.1 responses (Content-Length or chunked) from sock."""
    sock.settimeout(timeout)
    buf = b""
    out = []
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed after {len(out)} of {n} responses")
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {k.strip().lower(): v.strip() for k, v in
                (line.split(":", 1) for line in lines[1:] if ":" in line)}
        if "content-length" in hdrs:
            need = int(hdrs["content-length"])
            while len(buf) < need:
                chunk = sock.recv(65536)
                if not chunk:
                    raise AssertionError("body cut short")
                buf += chunk
            body, buf = buf[:need], buf[need:]
        elif hdrs.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                while b"\r\n" not in buf:
                    buf += sock.recv(65536)
                size_line, buf = buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                while len(buf) < size + 2:
                    buf += sock.recv(65536)
                body += buf[:size]
                buf = buf[size + 2:]
                if size == 0:
                    break
        else:
            body = b""
        out.append((status, json.loads(body) if body else None))
    return out


def test_pipelined_requests_answered_in_order(server, node, api, uniq):
    tok = node.tokens["all"]
    add = api.data_path("form", "Item")
    get = api.data_path("report", "All_Items") + "?criteria=" + \
        f'Marker=="{uniq}"'.replace('"', "%22").replace("=", "%3D")
    reqs = (raw_request("POST", add, tok, {"data": [{"Title": "p1", "Marker": uniq}]}) +
            raw_request("GET", get, tok) +
            raw_request("POST", add, tok, {"data": [{"Title": "p2", "Marker": uniq}]}) +
            raw_request("GET", api.data_path("report", "NoSuchReport"), tok) +
            raw_request("GET", get, tok))
    with tls_socket(server.https_port) as s:
        s.sendall(reqs)
        rs = read_responses(s, 5)
    assert [r[0] for r in rs] == [200, 200, 200, 404, 200], rs
    assert rs[0][1]["code"] == 3000 and rs[2][1]["code"] == 3000
    assert [x["Title"] for x in rs[1][1]["data"]] == ["p1"], "requests not answered in order"
    assert rs[3][1]["code"] == 2894
    assert sorted(x["Title"] for x in rs[4][1]["data"]) == ["p1", "p2"]


def test_clients_vanishing_mid_write(server, node, api, uniq):
    """40 clients send an add and hang up at once, without reading the
    answer; each record is whole or absent and the server keeps serving."""
    tok = node.tokens["all"]
    path = api.data_path("form", "Item")
    payload = "x" * 3000

    def vanish(i):
        try:
            s = tls_socket(server.https_port)
            s.sendall(raw_request("POST", path, tok, {"data": [
                {"Title": f"v{i}", "Marker": uniq, "Description": payload, "Quantity": i}]}))
            s.close()
        except OSError:
            pass
    ts = [threading.Thread(target=vanish, args=(i,)) for i in range(40)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    time.sleep(1.0)
    assert server.running(), f"server died:\n{server.log_tail()}"
    got = api.find("All_Items", f'Marker == "{uniq}"', field_config="all")
    for rec in got:
        i = int(rec["Title"][1:])
        assert rec["Description"] == payload and rec["Quantity"] == str(i), rec
    assert len({x["Title"] for x in got}) == len(got)
    [rid] = api.add_ok("Item", [{"Title": "after", "Marker": uniq}])
    assert api.get_ok("All_Items", rid)["Title"] == "after"


def test_client_vanishing_mid_body(server, node, api, uniq):
    tok = node.tokens["all"]
    body = json.dumps({"data": [{"Title": "half", "Marker": uniq}]}).encode()
    for _ in range(10):
        s = tls_socket(server.https_port)
        req = raw_request("POST", api.data_path("form", "Item"), tok,
                          {"data": [{"Title": "half", "Marker": uniq}]})
        s.sendall(req[:len(req) - len(body) // 2])
        s.close()
    time.sleep(0.5)
    assert server.running()
    expect(api.report("All_Items", {"criteria": f'Marker == "{uniq}"'}), 200, 9280)


def test_concurrent_batches_two_tenants(node, uniq):
    tenants = {"acme": node.api(), "beta": node.api("beta", owner="beta")}
    errors = []

    def work(tenant, k):
        a = tenants[tenant].clone()
        try:
            for j in range(4):
                a.add_ok("Bulk", [{"N": k * 10000 + j * 200 + i, "Batch": f"{uniq}-{tenant}"}
                                  for i in range(200)])
        except AssertionError as e:
            errors.append(f"{tenant}/{k}: {e}")
    ts = [threading.Thread(target=work, args=(t, k)) for t in tenants for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors[:2]
    for t, a in tenants.items():
        recs, _ = a.scan("All_Bulk", {"criteria": f'Batch == "{uniq}-{t}"'})
        assert len(recs) == 4 * 4 * 200 and len({r["ID"] for r in recs}) == len(recs), t
        other = "beta" if t == "acme" else "acme"
        expect(a.report("All_Bulk", {"criteria": f'Batch == "{uniq}-{other}"'}), 200, 9280)


@pytest.mark.parametrize("what", ["header", "url", "many_headers"])
def test_oversized_request_head_refused_cleanly(server, node, api, what):
    import requests
    h = {"Authorization": f"Zoho-oauthtoken {node.tokens['all']}"}
    url = server.url(api.data_path("report", "All_Items"))
    if what == "header":
        h["X-Big"] = "a" * 200000
    elif what == "url":
        url += "?criteria=" + "x" * 200000
    else:
        h.update({f"X-H{i}": "v" for i in range(2000)})
    try:
        r = requests.get(url, headers=h, verify=False, timeout=10)
        assert r.status_code in (400, 401, 404, 413, 414, 431), \
            f"{what}: HTTP {r.status_code} {r.text[:200]}"
        assert '"data"' not in r.text
    except requests.ConnectionError:
        pass  # closing the connection is an acceptable refusal
    assert server.running()
    expect(api.meta(api.owner, "shop", "forms"), 200, 3000)
