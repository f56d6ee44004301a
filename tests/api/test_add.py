"""Add records: POST form/{form} (creator-api.md 5.1, docs/api.md "Add")."""
import json

import pytest

from fvtest import body_of, describe, error_text, expect, expect_error, golden


def item(marker, **kw):
    d = {"Title": "Widget", "Marker": marker}
    d.update(kw)
    return d


def test_add_one_record(api, uniq):
    r = api.add("Item", [item(uniq, Quantity=3)])
    b = golden("add_one", r)
    rid = b["result"][0]["data"]["ID"]
    rec = api.get_ok("All_Items", rid)
    assert rec["ID"] == rid
    assert rec["Title"] == "Widget" and rec["Marker"] == uniq and rec["Quantity"] == "3"


def test_add_single_object_data(api, uniq):
    """`data` may be a bare object (docs/api.md)."""
    r = api.add("Item", item(uniq))
    b = golden("add_one", r)
    assert api.get_ok("All_Items", b["result"][0]["data"]["ID"])["Marker"] == uniq


def test_add_200_in_one_request(api, uniq):
    recs = [{"N": i, "Batch": uniq} for i in range(200)]
    r = api.add("Bulk", recs)
    b = golden("add_many", r)
    ids = [x["data"]["ID"] for x in b["result"]]
    assert len(ids) == 200 and len(set(ids)) == 200
    got = api.find("All_Bulk", f'Batch == "{uniq}"')
    assert sorted(x["ID"] for x in got) == sorted(ids)
    assert [x["N"] for x in got] == [str(i) for i in range(200)]  # All_Bulk sorts by N


def test_add_201_is_3950_and_writes_nothing(api, uniq):
    recs = [{"N": i, "Batch": uniq} for i in range(201)]
    r = api.add("Bulk", recs)
    b = expect_error(r, 200, 3950)
    assert not b.get("result"), describe(r)
    rr = api.report("All_Bulk", {"criteria": f'Batch == "{uniq}"'})
    expect(rr, 200, 9280)


def test_mixed_batch_keeps_valid_records(api, uniq):
    recs = [
        item(uniq, Quantity=1),
        {"Marker": uniq, "Quantity": 2},          # Title missing (required)
        item(uniq, Quantity=3),
        item(uniq, Quantity="abc"),               # not a number
        item(uniq, Contact="not-an-email"),       # bad email
    ]
    r = api.add("Item", recs)
    b = expect(r, 200, 3002)
    res = b["result"]
    assert len(res) == 5, describe(r)
    golden("add_record_ok", res[0])
    golden("add_record_ok", res[2])
    for i, field in ((1, "Title"), (3, "Quantity"), (4, "Contact")):
        golden("add_record_failed", res[i])
        assert field in error_text(res[i]), \
            f"record {i}: error must name '{field}': {res[i]}\n  {describe(r)}"
    got = api.find("All_Items", f'Marker == "{uniq}"')
    assert sorted(x["ID"] for x in got) == sorted([res[0]["data"]["ID"], res[2]["data"]["ID"]])
    assert sorted(x["Quantity"] for x in got) == ["1", "3"]


def test_all_failed_single_record_is_3002(api, uniq):
    r = api.add("Item", [{"Marker": uniq}])
    b = expect(r, 200, 3002)
    golden("add_record_failed", b["result"][0])
    assert "Title" in error_text(b["result"][0])
    expect(api.report("All_Items", {"criteria": f'Marker == "{uniq}"'}), 200, 9280)


def test_result_fields_message_tasks(api, uniq):
    r = api.add("Item", [item(uniq, Quantity=5, Price="2.5")],
                result={"fields": ["Title", "Quantity", "Price"], "message": False,
                        "tasks": True})
    b = expect(r, 200, 3000)
    res = b["result"][0]
    assert res["code"] == 3000 and "message" not in res, describe(r)
    assert res.get("tasks") == {}, describe(r)
    d = res["data"]
    assert set(d) == {"ID", "Title", "Quantity", "Price"}, describe(r)
    assert d["Title"] == "Widget" and d["Quantity"] == "5" and d["Price"] == "2.50"


# ---------------------------------------------------------------- bad input

BAD_RECORDS = [
    # (id, record (Marker added), field named in the error, per-record code)
    ("missing_required", {"Quantity": 1}, "Title", 3001),
    ("empty_required", {"Title": ""}, "Title", 3001),
    ("title_too_long", {"Title": "x" * 21}, "Title", 3001),
    ("unknown_field", {"Title": "t", "Bogus_Field": "1"}, "Bogus_Field", 3001),
    ("number_not_numeric", {"Title": "t", "Quantity": "abc"}, "Quantity", 3001),
    ("number_fraction", {"Title": "t", "Quantity": 1.5}, "Quantity", 3001),
    ("number_as_object", {"Title": "t", "Quantity": {"v": 1}}, "Quantity", 3001),
    ("number_16_digits", {"Title": "t", "Quantity": "1234567890123456"}, "Quantity", 8011),
    ("number_19_digits", {"Title": "t", "Quantity": 1234567890123456789}, "Quantity", 8011),
    ("decimal_3_places", {"Title": "t", "Price": "1.234"}, "Price", 8012),
    ("decimal_number_3_places", {"Title": "t", "Price": 1.234}, "Price", 8012),
    ("percent_2_places", {"Title": "t", "Discount": "1.25"}, "Discount", 8012),
    ("currency_3_places", {"Title": "t", "Cost": "0.001"}, "Cost", 8012),
    ("email_bad", {"Title": "t", "Contact": "no-at-sign"}, "Contact", 3001),
    ("dropdown_not_choice", {"Title": "t", "Category": "Food"}, "Category", 3001),
    ("radio_not_choice", {"Title": "t", "Size": "XL"}, "Size", 3001),
    ("multi_select_not_choice", {"Title": "t", "Colors": ["Red", "Purple"]}, "Colors", 3001),
    ("checkbox_not_choice", {"Title": "t", "Tags": ["Cheap"]}, "Tags", 3001),
    ("decision_bad", {"Title": "t", "Active": "maybe"}, "Active", 3001),
    ("date_bad_day", {"Title": "t", "Due_Date": "31-Feb-2024"}, "Due_Date", 3001),
    ("date_garbage", {"Title": "t", "Due_Date": "tomorrow"}, "Due_Date", 3001),
    ("datetime_bad", {"Title": "t", "Shipped_At": "01-Jan-2024 25:00:00"}, "Shipped_At", 3001),
    ("time_bad", {"Title": "t", "Open_Time": "24:30"}, "Open_Time", 3001),
    ("phone_letters", {"Title": "t", "Phone": "555-CALL-NOW"}, "Phone", 3001),
    ("lookup_missing", {"Title": "t", "Customer": "1"}, "Customer", 3001),
    ("single_line_as_list", {"Title": ["a"]}, "Title", 3001),
    ("url_javascript", {"Title": "t", "Homepage": {"url": "javascript:alert(1)"}}, "Homepage",
     3001),
    ("url_not_a_url", {"Title": "t", "Homepage": "not a url"}, "Homepage", 3001),
    ("name_unknown_part", {"Title": "t", "Owner_Name": {"middle": "x"}}, "Owner_Name", 3001),
    ("address_unknown_part", {"Title": "t", "Ship_To": {"street": "x"}}, "Ship_To", 3001),
]


@pytest.mark.parametrize("rec,field,code", [b[1:] for b in BAD_RECORDS],
                         ids=[b[0] for b in BAD_RECORDS])
def test_add_invalid_record(api, uniq, rec, field, code):
    rec = dict(rec, Marker=uniq)
    r = api.add("Item", [rec])
    b = expect(r, 200, 3002)
    res = b["result"]
    assert len(res) == 1, describe(r)
    assert res[0].get("code") == code, \
        f"expected per-record code {code}, got {res[0].get('code')}\n  {describe(r)}"
    assert not res[0].get("data"), f"failed record must not carry an ID\n  {describe(r)}"
    assert field in error_text(res[0]), \
        f"error must name the field '{field}': {res[0]}\n  {describe(r)}"
    expect(api.report("All_Items", {"criteria": f'Marker == "{uniq}"'}), 200, 9280)


def test_number_15_digits_accepted(api, uniq):
    ids = api.add_ok("Item", [item(uniq, Quantity="123456789012345")])
    assert api.get_ok("All_Items", ids[0])["Quantity"] == "123456789012345"


def test_max_length_counts_characters_not_bytes(api, uniq):
    title = "é" * 20  # 20 characters, 40 bytes in UTF-8
    ids = api.add_ok("Item", [item(uniq, Title=title)])
    assert api.get_ok("All_Items", ids[0])["Title"] == title


def test_unique_duplicate_rejected(api, uniq):
    sku = "SKU-" + uniq
    api.add_ok("Item", [item(uniq, Sku=sku)])
    r = api.add("Item", [item(uniq, Sku=sku)])
    b = expect(r, 200, 3002)
    golden("add_record_failed", b["result"][0])
    assert "Sku" in error_text(b["result"][0]) or "SKU" in error_text(b["result"][0]), describe(r)
    assert len(api.find("All_Items", f'Marker == "{uniq}"')) == 1


def test_unique_duplicate_within_one_batch(api, uniq):
    sku = "SKU-" + uniq
    r = api.add("Item", [item(uniq, Sku=sku), item(uniq, Sku=sku)])
    b = expect(r, 200, 3002)
    assert b["result"][0]["code"] == 3000 and b["result"][1]["code"] == 3001, describe(r)
    got = api.find("All_Items", f'Marker == "{uniq}"')
    assert [x["ID"] for x in got] == [b["result"][0]["data"]["ID"]]


def test_unique_required_on_other_form(api, uniq):
    code = uniq[-12:]
    api.add_ok("Customer", [{"Customer_Code": code}])
    r = api.add("Customer", [{"Customer_Code": code}])
    b = expect(r, 200, 3002)
    assert "Customer_Code" in error_text(b["result"][0]) or \
        "Customer Code" in error_text(b["result"][0]), describe(r)


@pytest.mark.parametrize("raw", [
    b'{"data": [{"Title": "x"}',          # truncated
    b'{"data": [{"Title": "x",}]}',       # trailing comma
    b"not json at all",
    b"",                                  # empty body
    b'{"data": "Title"}',                 # data neither object nor array
    b'{"records": [{"Title": "x"}]}',     # no data key
    b'[{"Title": "x"}]',                  # top level not an object
    b'{"data": [{"Title": "\xff\xfe"}]}',  # invalid UTF-8
], ids=["truncated", "trailing_comma", "garbage", "empty", "data_string", "no_data_key",
        "top_level_array", "invalid_utf8"])
def test_malformed_body_3020(api, raw):
    r = api.request("POST", api.data_path("form", "Item"), data=raw,
                    headers={"Content-Type": "application/json"})
    expect_error(r, 400, 3020)


def test_deeply_nested_json_refused(api):
    """JSON depth is limited (STYLE 32, max_json_depth 16)."""
    deep = "[" * 100000 + "]" * 100000
    raw = ('{"data": [{"Title": "x", "Note": ' + deep + '}]}').encode()
    r = api.request("POST", api.data_path("form", "Item"), data=raw,
                    headers={"Content-Type": "application/json"})
    expect_error(r, 400, 3020)


def test_text_plain_content_type_accepted(api, uniq):
    """creator-api.md 3: text/plain + JSON body works; be lenient."""
    r = api.request("POST", api.data_path("form", "Item"),
                    data=json.dumps({"data": [item(uniq)]}),
                    headers={"Content-Type": "text/plain"})
    golden("add_one", r)


def test_skip_workflow_in_body_accepted(api, uniq):
    r = api.add("Item", None, body={"data": [item(uniq)], "skip_workflow": ["form_workflow"]})
    golden("add_one", r)


def test_skip_workflow_in_query_is_1060(api, uniq):
    r = api.request("POST", api.data_path("form", "Item"), json={"data": [item(uniq)]},
                    params={"skip_workflow": "all"})
    expect_error(r, 401, 1060)
    expect(api.report("All_Items", {"criteria": f'Marker == "{uniq}"'}), 200, 9280)


def test_autonumber_not_settable(api, uniq):
    """Autonumber is server-assigned: a value sent for it is refused (3001)
    or ignored; it never ends up stored."""
    r = api.add("Item", [item(uniq, Serial="IT-1")])
    b = body_of(r)
    assert r.status_code == 200 and b.get("code") in (3000, 3002), describe(r)
    if b["code"] == 3000:
        rec = api.get_ok("All_Items", b["result"][0]["data"]["ID"], {"field_config": "all"})
        assert rec["Serial"] != "IT-1", describe(r)
    else:
        assert "Serial" in error_text(b["result"][0]), describe(r)


def test_autonumber_increments(api, uniq):
    ids = api.add_ok("Item", [item(uniq), item(uniq), item(uniq)])
    serials = [api.get_ok("All_Items", i, {"field_config": "all"})["Serial"] for i in ids]
    nums = []
    for s in serials:
        assert s.startswith("IT-"), serials
        nums.append(int(s[3:]))
    assert all(n >= 1000 for n in nums), serials
    assert nums[0] < nums[1] < nums[2], serials


def test_malformed_body_message_never_echoes_values(api):
    """docs/errors.md: messages never contain field values."""
    for raw in (b'{"data": [{"Title": "s3cr3t-XYZ",}]}',
                b'{"data": [{"Title": "s3cr3t-XYZ\\u0000"}]}',
                b'{"data": [{"Title": "s3cr3t-XYZ" "x"}]}'):
        r = api.request("POST", api.data_path("form", "Item"), data=raw,
                        headers={"Content-Type": "application/json"})
        expect_error(r, 400, 3020)
        assert "s3cr3t-XYZ" not in r.text, f"error echoes a value: {describe(r)}"


def test_unknown_body_key_is_3020(api, uniq):
    """docs/errors.md FV_E_BODY: an unknown key in the body is refused."""
    r = api.add("Item", None, body={"data": [item(uniq)], "dataa": 1})
    expect_error(r, 400, 3020)
    expect(api.report("All_Items", {"criteria": f'Marker == "{uniq}"'}), 200, 9280)
