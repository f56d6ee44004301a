"""The access log: one JSON line per request on the server's stderr, with
time, route, status, duration_ms, tenant and request_id, and never a field
value or a token (STYLE 28)."""
import time

import pytest

from fvtest import expect

pytestmark = pytest.mark.local

SECRET = "S3CRET-VALUE-d41d8cd98f00"


def test_access_log_lines_and_no_secrets(server, node):
    api = node.api()
    n0 = len(server.log_records())
    sent = 0
    [rid] = api.add_ok("Item", [{"Title": "log", "Marker": SECRET, "Contact": "pii@example.com",
                                 "Description": SECRET + " in text"}])
    sent += 1
    expect(api.report("All_Items", {"criteria": f'Marker == "{SECRET}"'}), 200, 3000)
    expect(api.get("All_Items", rid), 200, 3000)
    expect(api.update("All_Items", rid, {"Note": SECRET + "-upd"}), 200, 3000)
    expect(api.update_where("All_Items", f'Marker == "{SECRET}"', {"Quantity": 1}), 200, 3000)
    expect(api.add("Item", [{"Title": "x" * 30, "Marker": SECRET}]), 200, 3002)  # refused value
    expect(api.report("All_Items", {"criteria": f'Marker == "{SECRET}" &&'}), 400, 3330)
    sent += 6
    bad = node.api(token="Zoho-garbage-" + SECRET)
    expect(bad.report("All_Items"), 401, 1030)
    expect(node.api(owner="beta").report("All_Items"), 403, 2933)
    sent += 2
    # the line is written when the response completes, maybe just after the
    # client has read it: allow a moment
    deadline = time.monotonic() + 3
    while True:
        recs = server.log_records()[n0:]
        reqs = [x for x in recs if "request_id" in x]
        if len(reqs) >= sent or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(reqs) >= sent, f"{sent} requests, {len(reqs)} access log lines"
    for x in reqs:
        for k in ("time", "route", "status", "duration_ms", "tenant", "request_id"):
            assert k in x, f"access log line lacks {k}: {x}"
        assert isinstance(x["status"], int) and isinstance(x["duration_ms"], (int, float))
        assert x["duration_ms"] >= 0
    ids = [x["request_id"] for x in reqs]
    assert len(set(ids)) == len(ids), "request_id must be unique per request"
    assert any(x["tenant"] == "acme" and x["status"] == 200 for x in reqs)
    assert any(x["status"] == 401 for x in reqs) and any(x["status"] == 403 for x in reqs)
    assert "_unparsed" not in str(recs), "every log line must be JSON"
    text = server.log_text()
    assert SECRET not in text, "a field value reached the log"
    assert "pii@example.com" not in text, "an e-mail value reached the log"
    for name, tok in node.tokens.items():
        assert tok not in text, f"token '{name}' reached the log"
        assert tok[-16:] not in text, f"the secret part of token '{name}' reached the log"
