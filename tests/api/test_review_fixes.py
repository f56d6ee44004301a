"""Regression tests for defects found in review: each names the defect it pins."""
import requests

from fvtest import expect


def test_invalid_utf8_in_url_names_is_4xx_not_500(api):
    """%ff in a report/form/field name used to give 500 "out of memory"."""
    for path, status, code in [
        (api.data_path("report", "%ff%fe"), 404, 2894),
        (api.data_path("form", "%ff"), 404, 2893),
    ]:
        method = "POST" if "/form/" in path else "GET"
        r = api.request(method, path, json={"data": [{"Customer_Code": "x"}]})
        assert r.status_code == status, (path, r.status_code, r.text)
        b = r.json()
        assert b["code"] == code, (path, b)
        assert "?" in b["message"], b  # the bad bytes are shown as '?', never raw


def test_invalid_utf8_in_fields_param_is_3710(api):
    r = api.report("All_Customers", params={"field_config": "custom", "fields": b"\xff".decode("latin-1")})
    assert r.status_code == 400 and r.json()["code"] == 3710, r.text


def test_update_by_criteria_partial_failure_is_3002(api, uniq):
    """A failed record inside update-by-criteria must not leave the top-level code at 3000."""
    tag = uniq[-6:]
    ids = [api.add_ok("Customer", [{"Customer_Code": f"U{tag}{i}"}])[0] for i in range(3)]
    assert len(ids) == 3
    # every match gets the same unique value: the first succeeds, the others conflict
    r = api.update_where("All_Customers", f'Customer_Code.startsWith("U{tag}")',
                         {"Customer_Code": f"V{tag}"}, params={"process_until_limit": "true"})
    b = expect(r, 200, 3002)
    codes = sorted(e["code"] for e in b["result"])
    assert codes == [3000, 3001, 3001], b


def test_malformed_json_reason_is_not_empty(api):
    r = api.request("POST", api.data_path("form", "Customer"),
                    data=b'{"data":{"Customer_Code":"a" "x"}}',
                    headers={"Content-Type": "application/json"})
    b = expect(r, 400, 3020)
    reason = b["message"].split("not valid json:", 1)[1].split(" at line")[0].strip()
    assert reason, f"empty reason: {b['message']!r}"


def test_cursor_past_the_end_is_an_empty_page_not_9220(api, uniq):
    tag = uniq[-6:]
    api.add_ok("Customer", [{"Customer_Code": f"K{tag}{i}"} for i in range(3)])
    crit = f'Customer_Code.startsWith("K{tag}")'
    first = api.report("All_Customers", params={"criteria": crit, "limit": 2})
    b = expect(first, 200, 3000)
    cursor = first.headers.get("record_cursor")
    assert cursor and len(b["data"]) == 2
    second = api.report("All_Customers", params={"criteria": crit, "limit": 2},
                        headers={"record_cursor": cursor})
    b2 = expect(second, 200, 3000)
    assert len(b2["data"]) == 1 and "record_cursor" not in second.headers
    # delete the last record, then replay the cursor: nothing left after it
    api.delete("All_Customers", b2["data"][0]["ID"])
    third = api.report("All_Customers", params={"criteria": crit, "limit": 2},
                       headers={"record_cursor": cursor})
    b3 = expect(third, 200, 3000)
    assert b3["data"] == []


def test_record_cursor_is_sealed(api, uniq):
    """The cursor must not carry the last row's sort value in clear, must not be
    forgeable, and works only for the report that issued it."""
    import base64
    tag = uniq[-6:]
    api.add_ok("Item", [{"Title": f"S{tag}", "Marker": f"m{tag}{i}", "Quantity": i}
                        for i in range(3)])
    crit = f'Marker.startsWith("m{tag}")'
    r = api.report("Items_By_Quantity", params={"criteria": crit, "limit": 1})
    expect(r, 200, 3000)
    cursor = r.headers["record_cursor"]
    raw = base64.b64decode(cursor)
    # sealed with a fresh nonce: the same position gives a different cursor each time
    again = api.report("Items_By_Quantity", params={"criteria": crit, "limit": 1})
    assert again.headers["record_cursor"] != cursor
    assert len(raw) > 12 + 16
    # the same report continues
    expect(api.report("Items_By_Quantity", params={"criteria": crit, "limit": 1},
                      headers={"record_cursor": cursor}), 200, 3000)
    # another report over the same form refuses it
    other = api.report("All_Items", params={"criteria": crit, "limit": 1},
                       headers={"record_cursor": cursor})
    assert other.status_code == 400 and other.json()["code"] == 1000, other.text
    # a flipped bit is refused
    flipped = bytearray(raw)
    flipped[len(flipped) // 2] ^= 1
    bad = api.report("Items_By_Quantity", params={"criteria": crit, "limit": 1},
                     headers={"record_cursor": base64.b64encode(bytes(flipped)).decode()})
    assert bad.status_code == 400 and bad.json()["code"] == 1000, bad.text


def test_record_cursor_is_bound_to_the_tenant(node, uniq):
    """Both tenants have app 'shop' with report 'Items_By_Quantity': a cursor
    issued to one tenant must not open under the other."""
    acme = node.api()
    beta = node.api(token="beta", owner="beta")
    tag = uniq[-6:]
    for a in (acme, beta):
        a.add_ok("Item", [{"Title": f"B{tag}", "Marker": f"b{tag}{i}", "Quantity": i}
                          for i in range(3)])
    crit = f'Marker.startsWith("b{tag}")'
    r = acme.report("Items_By_Quantity", params={"criteria": crit, "limit": 1})
    expect(r, 200, 3000)
    cursor = r.headers["record_cursor"]
    other = beta.report("Items_By_Quantity", params={"criteria": crit, "limit": 1},
                        headers={"record_cursor": cursor})
    assert other.status_code == 400 and other.json()["code"] == 1000, other.text


def test_json_error_never_quotes_invalid_unicode(api):
    r = api.request("POST", api.data_path("form", "Item"),
                    data=b'{"data":{"Title":"\\uD800\\u0041"}}',
                    headers={"Content-Type": "application/json"})
    b = expect(r, 400, 3020)
    assert "D800" not in b["message"].upper() and "0041" not in b["message"], b


def test_per_record_error_with_cut_utf8_name_is_not_500(api):
    """A 64-byte cut of an unknown field name that splits a UTF-8 character
    must not turn the whole (already committed) add into a 500."""
    name = "A" * 63 + "é" + "B"
    r = api.add("Item", [{"Title": "ok", "Marker": "x"}, {"Title": "t", name: 1}])
    b = expect(r, 200, 3002)
    assert b["result"][0]["code"] == 3000 and b["result"][1]["code"] == 3001, b
