"""Every field type in and out (docs/app-format.md "Field types"), app date
format dd-MMM-yyyy."""
import re

import pytest

from fvtest import describe, expect, expect_error


@pytest.fixture(scope="module")
def customer(node):
    api = node.api()
    import uuid
    code = "C-" + uuid.uuid4().hex[:8]
    [cid] = api.add_ok("Customer", [{"Customer_Code": code, "Company": "Acme"}])
    return cid, code


def full_record(marker, cid):
    return {
        "Title": "Full record",
        "Sku": "SKU-" + marker,
        "Description": "line one\nline two, with \"quotes\" and ünïcödé 日本語",
        "Contact": "ada.lovelace@example.com",
        "Body": "<p>Hello <b>world</b> &amp; co</p>",
        "Quantity": 42,
        "Price": 12.5,
        "Discount": "7.5",
        "Cost": "1234.56",
        "Due_Date": "01-Jan-2024",
        "Shipped_At": "05-Mar-2024 08:09:10",
        "Size": "M",
        "Colors": ["Red", "Blue"],
        "Tags": ["Sale"],
        "Active": False,
        "Homepage": {"value": "Example", "url": "https://example.com/a?b=c", "title": "Ex"},
        "Phone": "+1 (555) 010-9999 x12",
        "Open_Time": "09:30",
        "Owner_Name": {"prefix": "Dr.", "first_name": "Ada", "last_name": "Lovelace",
                       "suffix": "Jr."},
        "Ship_To": {"address_line_1": "1 Main St", "address_line_2": "Suite 2",
                    "district_city": "Springfield", "state_province": "IL",
                    "postal_code": "62701", "country": "US",
                    "latitude": "39.78", "longitude": "-89.65"},
        "Customer": cid,
        "Marker": marker,
    }


EXPECTED_OUT = {
    "Title": "Full record",
    "Description": "line one\nline two, with \"quotes\" and ünïcödé 日本語",
    "Contact": "ada.lovelace@example.com",
    "Body": "<p>Hello <b>world</b> &amp; co</p>",
    "Quantity": "42",
    "Price": "12.50",
    "Discount": "7.5",
    "Cost": "1234.56",
    "Due_Date": "01-Jan-2024",
    "Shipped_At": "05-Mar-2024 08:09:10",
    "Size": "M",
    "Tags": ["Sale"],
    "Active": False,
    "Phone": "+1 (555) 010-9999 x12",
    "Open_Time": "09:30:00",
    "Category": "General",   # default
    "Note": "none",          # default
}


@pytest.fixture(scope="module")
def stored(node, customer):
    import uuid
    marker = "full-" + uuid.uuid4().hex[:10]
    api = node.api()
    [rid] = api.add_ok("Item", [full_record(marker, customer[0])])
    return rid, marker


@pytest.mark.parametrize("field", sorted(EXPECTED_OUT))
def test_round_trip_scalar(api, stored, field):
    rid, _ = stored
    rec = api.get_ok("All_Items", rid, {"field_config": "all"})
    assert field in rec, f"'{field}' missing from {rec}"
    assert rec[field] == EXPECTED_OUT[field], \
        f"{field}: expected {EXPECTED_OUT[field]!r}, got {rec[field]!r}"


def test_round_trip_sku_unique_text(api, stored):
    rid, marker = stored
    assert api.get_ok("All_Items", rid, {"field_config": "all"})["Sku"] == "SKU-" + marker


def test_round_trip_multi_select_keeps_choices(api, stored):
    rid, _ = stored
    v = api.get_ok("All_Items", rid, {"field_config": "all"})["Colors"]
    assert isinstance(v, list) and sorted(v) == ["Blue", "Red"], v


def test_round_trip_url(api, stored):
    rid, _ = stored
    v = api.get_ok("All_Items", rid, {"field_config": "all"})["Homepage"]
    assert isinstance(v, dict) and set(v) == {"value", "url", "title"}, v
    assert v["url"] == "https://example.com/a?b=c" and v["title"] == "Ex", v


def test_round_trip_name(api, stored):
    rid, _ = stored
    v = api.get_ok("All_Items", rid, {"field_config": "all"})["Owner_Name"]
    assert isinstance(v, dict), v
    for k, want in (("prefix", "Dr."), ("first_name", "Ada"), ("last_name", "Lovelace"),
                    ("suffix", "Jr.")):
        assert v.get(k) == want, f"{k}: {v}"
    assert "Ada" in v["zc_display_value"] and "Lovelace" in v["zc_display_value"], v
    assert set(v) == {"prefix", "first_name", "last_name", "suffix", "zc_display_value"}, v


def test_round_trip_address(api, stored):
    rid, _ = stored
    v = api.get_ok("All_Items", rid, {"field_config": "all"})["Ship_To"]
    keys = {"address_line_1", "address_line_2", "district_city", "state_province",
            "postal_code", "country", "latitude", "longitude"}
    assert isinstance(v, dict) and set(v) == keys | {"zc_display_value"}, v
    assert v["address_line_1"] == "1 Main St" and v["district_city"] == "Springfield", v
    assert v["postal_code"] == "62701" and v["country"] == "US", v
    assert "Springfield" in v["zc_display_value"], v


def test_round_trip_lookup(api, stored, customer):
    rid, _ = stored
    cid, code = customer
    v = api.get_ok("All_Items", rid, {"field_config": "all"})["Customer"]
    assert v == {"ID": cid, "zc_display_value": code}, v


def test_round_trip_autonumber(api, stored):
    rid, _ = stored
    v = api.get_ok("All_Items", rid, {"field_config": "all"})["Serial"]
    assert isinstance(v, str) and re.fullmatch(r"IT-\d+", v) and int(v[3:]) >= 1000, v


def test_id_is_digit_string(api, stored):
    rid, _ = stored
    assert isinstance(rid, str) and re.fullmatch(r"[0-9]{1,20}", rid)
    assert int(rid) < 2 ** 64


# Alternate input spellings that must map to the same stored value.
ALTERNATES = [
    ("Due_Date", "2024-01-31", "31-Jan-2024"),          # ISO date accepted
    ("Due_Date", "29-Feb-2024", "29-Feb-2024"),         # leap day
    ("Shipped_At", "2024-03-05T08:09:10", "05-Mar-2024 08:09:10"),
    ("Open_Time", "23:59:59", "23:59:59"),
    ("Quantity", "0", "0"),
    ("Quantity", -17, "-17"),
    ("Quantity", "123456789012345", "123456789012345"),
    ("Price", "3", "3.00"),
    ("Price", 0.1, "0.10"),
    ("Price", "-2.5", "-2.50"),
    ("Cost", 19.99, "19.99"),
    ("Discount", 100, "100.0"),
    ("Active", "true", True),
    ("Active", "false", False),
    ("Active", True, True),
    ("Category", "Toys", "Toys"),
    ("Colors", [], []),
    ("Tags", ["New", "Gift"], ["New", "Gift"]),
    ("Phone", "0049 30 1234567", "0049 30 1234567"),
    ("Description", "", ""),
]


@pytest.mark.parametrize("field,given,want", ALTERNATES,
                         ids=[f"{a[0]}-{a[1]!r}" for a in ALTERNATES])
def test_input_spellings(api, uniq, field, given, want):
    [rid] = api.add_ok("Item", [{"Title": "alt", "Marker": uniq, field: given}])
    rec = api.get_ok("All_Items", rid, {"field_config": "all"})
    got = rec.get(field, "" if want == "" else None)
    if isinstance(want, list) and isinstance(got, list) and field == "Tags":
        got, want = sorted(got), sorted(want)
    if want == [] and got in (None, ""):
        got = []  # an empty multi-value field may come back empty in either form
    assert got == want, f"{field}={given!r}: expected {want!r}, got {got!r}"


def test_url_plain_string(api, uniq):
    [rid] = api.add_ok("Item", [{"Title": "u", "Marker": uniq,
                                 "Homepage": "https://example.org/x"}])
    v = api.get_ok("All_Items", rid, {"field_config": "all"})["Homepage"]
    assert isinstance(v, dict) and v["url"] == "https://example.org/x", v


def test_lookup_id_as_number(api, uniq, customer):
    cid, code = customer
    [rid] = api.add_ok("Item", [{"Title": "l", "Marker": uniq, "Customer": int(cid)}])
    v = api.get_ok("All_Items", rid, {"field_config": "all"})["Customer"]
    assert v == {"ID": cid, "zc_display_value": code}, v


def test_decision_default_true(api, uniq):
    [rid] = api.add_ok("Item", [{"Title": "d", "Marker": uniq}])
    assert api.get_ok("All_Items", rid, {"field_config": "all"})["Active"] is True


def test_null_clears_on_update(api, uniq):
    [rid] = api.add_ok("Item", [{"Title": "n", "Marker": uniq, "Quantity": 5,
                                 "Description": "text"}])
    expect(api.update("All_Items", rid, {"Quantity": None, "Description": ""}), 200, 3000)
    rec = api.get_ok("All_Items", rid, {"field_config": "all"})
    assert rec.get("Quantity", "") in ("", None), rec
    assert rec.get("Description", "") in ("", None), rec
    assert rec["Title"] == "n"


def test_criteria_date_literal_app_format(api, uniq):
    api.add_ok("Item", [{"Title": "d1", "Marker": uniq, "Due_Date": "15-Jan-2024"},
                        {"Title": "d2", "Marker": uniq, "Due_Date": "15-Feb-2024"},
                        {"Title": "d3", "Marker": uniq, "Due_Date": "15-Dec-2023"}])
    got = api.find("All_Items", f"Marker == \"{uniq}\" && Due_Date >= '01-Jan-2024' "
                                f"&& Due_Date < '01-Feb-2024'")
    assert [x["Title"] for x in got] == ["d1"], got


def test_criteria_on_composite_and_lookup(api, uniq, customer):
    cid, code = customer
    api.add_ok("Item", [
        {"Title": "c1", "Marker": uniq, "Customer": cid,
         "Owner_Name": {"first_name": "Grace", "last_name": "McHopper"}},
        {"Title": "c2", "Marker": uniq,
         "Owner_Name": {"first_name": "Alan", "last_name": "Turing"}},
    ])
    got = api.find("All_Items", f'Marker == "{uniq}" && Owner_Name.last_name.startsWith("Mc")')
    assert [x["Title"] for x in got] == ["c1"], got
    got = api.find("All_Items", f'Marker == "{uniq}" && Customer == {cid}')
    assert [x["Title"] for x in got] == ["c1"], got
    got = api.find("All_Items", f'Marker == "{uniq}" && Customer.Customer_Code == "{code}"')
    assert [x["Title"] for x in got] == ["c1"], got
    got = api.find("All_Items", f'Marker == "{uniq}" && Customer == null')
    assert [x["Title"] for x in got] == ["c2"], got


def test_criteria_multi_select_contains(api, uniq):
    api.add_ok("Item", [{"Title": "m1", "Marker": uniq, "Colors": ["Red", "Green"]},
                        {"Title": "m2", "Marker": uniq, "Colors": ["Blue"]}])
    got = api.find("All_Items", f'Marker == "{uniq}" && Colors.contains("Green")')
    assert [x["Title"] for x in got] == ["m1"], got


def test_criteria_numbers_compare_numerically(api, uniq):
    api.add_ok("Item", [{"Title": f"q{q}", "Marker": uniq, "Quantity": q, "Price": p}
                        for q, p in ((9, "9.50"), (10, "10.00"), (100, "100.25"))])
    got = api.find("All_Items", f'Marker == "{uniq}" && Quantity > 9')
    assert sorted(x["Title"] for x in got) == ["q10", "q100"], got
    got = api.find("All_Items", f'Marker == "{uniq}" && Price >= 10.00 && Price < 100')
    assert [x["Title"] for x in got] == ["q10"], got
    got = api.find("All_Items", f'(Marker == "{uniq}") && !(Quantity == 10)')
    assert sorted(x["Title"] for x in got) == ["q100", "q9"], got
    got = api.find("All_Items",
                   f'Marker == "{uniq}" && (Quantity == 9 || Quantity == 100) && Price > 50')
    assert [x["Title"] for x in got] == ["q100"], got


def test_get_fields_type_codes(api):
    from fvtest import golden
    r = api.meta(api.owner, "shop", "form", "Item", "fields")
    b = golden("meta_fields", r)
    codes = {f["link_name"]: f["type"] for f in b["fields"]}
    want = {
        "Title": 1, "Description": 2, "Contact": 3, "Body": 4, "Quantity": 5, "Price": 6,
        "Discount": 7, "Cost": 8, "Serial": 9, "Due_Date": 10, "Shipped_At": 11,
        "Category": 12, "Size": 13, "Colors": 14, "Tags": 15, "Active": 16, "Homepage": 17,
        "Phone": 19, "Open_Time": 20, "Owner_Name": 29, "Ship_To": 30, "Customer": 12,
    }
    for k, v in want.items():
        assert codes.get(k) == v, f"{k}: type code {codes.get(k)}, expected {v}\n  {describe(r)}"
    by = {f["link_name"]: f for f in b["fields"]}
    assert by["Title"]["mandatory"] is True and by["Title"]["unique"] is False
    assert by["Sku"]["unique"] is True and by["Sku"]["mandatory"] is False
    assert by["Sku"]["display_name"] == "SKU"
    assert by["Title"].get("max_char") == 20, by["Title"]
    assert [f["link_name"] for f in b["fields"]] == [
        "Title", "Sku", "Description", "Contact", "Body", "Quantity", "Price", "Discount",
        "Cost", "Serial", "Due_Date", "Shipped_At", "Category", "Size", "Colors", "Tags",
        "Active", "Homepage", "Phone", "Open_Time", "Owner_Name", "Ship_To", "Customer",
        "Note", "Marker"], "fields must come in definition order"


# ------------------------------------------------------------- text edge cases

def test_max_length_counts_astral_characters(api, uniq):
    title = "😀" * 20  # 20 characters, 80 bytes, 40 UTF-16 units
    [rid] = api.add_ok("Item", [{"Title": title, "Marker": uniq}])
    assert api.get_ok("All_Items", rid)["Title"] == title
    r = api.add("Item", [{"Title": "😀" * 21, "Marker": uniq}])
    assert expect(r, 200, 3002)["result"][0]["code"] == 3001


def test_multi_line_default_limit_65535(api, uniq):
    text = ("0123456789abcdef\n" * 4000)[:65535]
    [rid] = api.add_ok("Item", [{"Title": "big", "Marker": uniq, "Description": text}])
    assert api.get_ok("All_Items", rid, {"field_config": "all"})["Description"] == text
    r = api.add("Item", [{"Title": "big", "Marker": uniq, "Description": text + "x"}])
    assert expect(r, 200, 3002)["result"][0]["code"] == 3001


def test_nul_byte_never_truncates(api, uniq):
    """A NUL inside a string is refused or kept; never silently cut."""
    r = api.add("Item", [{"Title": "nul", "Marker": uniq, "Description": "a\u0000b"}])
    if r.status_code == 400:
        expect_error(r, 400, 3020)  # the whole body refused: fine
        return
    b = expect(r, 200, r.json().get("code"))
    res = b["result"][0]
    if res["code"] == 3000:
        got = api.get_ok("All_Items", res["data"]["ID"], {"field_config": "all"})["Description"]
        assert got == "a\u0000b", f"stored {got!r}"
    else:
        assert res["code"] == 3001 and "Description" in str(res), res


def test_unicode_criteria_and_round_trip(api, uniq):
    vals = ["Müller", "日本語テキスト", "مرحبا", "emoji 😀 ok", 'quote " and \\ backslash']
    api.add_ok("Item", [{"Title": f"u{i}", "Marker": uniq, "Description": v}
                        for i, v in enumerate(vals)])
    for i, v in enumerate(vals):
        lit = v.replace("\\", "\\\\").replace('"', '\\"')
        got = api.find("All_Items", f'Marker == "{uniq}" && Description == "{lit}"',
                       field_config="all")
        assert [x["Title"] for x in got] == [f"u{i}"], f"criteria on {v!r}: {got}"
        assert got[0]["Description"] == v
