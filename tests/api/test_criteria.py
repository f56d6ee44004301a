"""The criteria language as pinned in docs/criteria.md: precedence, case,
empty values, literals, limits and error positions ("at <pos>:", 0-based)."""
import re

import pytest

from fvtest import body_of, describe, expect, expect_error

# (criteria on shop/Item, byte position of the error) after docs/criteria.md
ERRORS = [
    ("Title ==", 8),
    ('Title = "a"', 6),
    ("Title", 5),
    ('Title == "abc', 9),
    ('Title == "a\\n"', 11),
    ('(Title == "a"', 13),
    ('Title == "a")', 12),
    ('Title == "a" &&', 15),
    ('Title == "a" Quantity == 2', 13),
    ("Title < null", 8),
    ("Title.contains(true)", 15),
    ("Title is nul", 9),
    ("Quantity == 1.", 14),
    ("Nope == 1", 0),
    ("Colors < 3", 7),
    ('Colors == "Red"', 7),
    ('Quantity == "abc"', 12),
    ("Quantity == 1234567890123456", 12),
    ("Discount == 1.25", 12),
    ("Due_Date == 5", 12),
    ("Due_Date == '29-Feb-2023'", 12),
    ("Active == 1", 10),
    ('Owner_Name == "x"', 0),
    ('Owner_Name.middle == "x"', 0),
    ("Customer == 0", 12),
    ('Title ?? "a"', 6),
]


@pytest.mark.parametrize("crit,pos", ERRORS, ids=[e[0] or "empty" for e in ERRORS])
def test_criteria_error_position(api, crit, pos):
    r = api.report("All_Items", {"criteria": crit})
    b = expect_error(r, 400, 3330)
    msg = str(b.get("message", ""))
    m = re.search(r"\bat (\d+):", msg)
    assert m, f"message must start 'at <pos>:': {msg!r}"
    assert int(m.group(1)) == pos, f"{crit!r}: error at {m.group(1)}, expected {pos}: {msg!r}"


def test_criteria_error_never_quotes_value(api):
    r = api.report("All_Items", {"criteria": 'Quantity == "s3cr3t-value"'})
    b = expect_error(r, 400, 3330)
    assert "s3cr3t-value" not in r.text, describe(r)
    assert "Quantity" in b["message"]


def test_criteria_too_long(api):
    crit = "Title == " + '"' + "x" * 4100 + '"'
    r = api.report("All_Items", {"criteria": crit})
    b = expect_error(r, 400, 3330)
    assert "4096" in b["message"], b


def test_criteria_nested_too_deep(api):
    crit = "(" * 40 + 'Title == "a"' + ")" * 40
    b = expect_error(api.report("All_Items", {"criteria": crit}), 400, 3330)
    assert "32" in b["message"], b
    ok = "(" * 30 + 'Title == "no-such-title"' + ")" * 30
    expect(api.report("All_Items", {"criteria": ok}), 200, 9280)


def test_criteria_too_many_tests(api):
    crit = "||".join(f"Quantity=={i}" for i in range(257))
    assert len(crit) < 4096
    b = expect_error(api.report("All_Items", {"criteria": crit}), 400, 3330)
    assert "256" in b["message"], b


@pytest.fixture(scope="module")
def data(node):
    import uuid
    m = "crit-" + uuid.uuid4().hex[:10]
    api = node.api()
    api.add_ok("Item", [
        {"Title": "a", "Marker": m, "Quantity": 1, "Size": "S", "Description": "Smith",
         "Due_Date": "10-Jan-2024", "Homepage": "https://a.example/x",
         "Owner_Name": {"last_name": "Ng"}},
        {"Title": "b", "Marker": m, "Quantity": 2, "Size": "M", "Description": "smith",
         "Due_Date": "20-Jan-2024"},
        {"Title": "c", "Marker": m, "Quantity": 3, "Description": "50% off"},
    ])
    return m


def titles(api, m, crit):
    return sorted(x["Title"] for x in api.find("All_Items", f'Marker == "{m}" && ({crit})'))


CASES = [
    # A || B && C is A || (B && C)
    ('Title == "a" || Title == "b" && Quantity == 3', ["a"]),
    ('(Title == "a" || Title == "b") && Quantity == 2', ["b"]),
    ('!Title == "a"', ["b", "c"]),
    ('!(Title == "a") && !(Title == "b")', ["c"]),
    # case-sensitive strings
    ('Description == "Smith"', ["a"]),
    ('Description.contains("mith")', ["a", "b"]),
    ('Description.startsWith("S")', ["a"]),
    ('Description.endsWith("ith")', ["a", "b"]),
    ('Description.contains("50%")', ["c"]),
    ('Description.contains("")', ["a", "b", "c"]),
    # != includes empty fields; ordering is false on empty
    ('Size != "S"', ["b", "c"]),
    ('Size == null', ["c"]),
    ('Size is null', ["c"]),
    ('Size is not null', ["a", "b"]),
    ('Due_Date < \'15-Jan-2024\'', ["a"]),
    ('!(Due_Date < \'15-Jan-2024\')', ["b"]),
    ("Due_Date >= '2024-01-15'", ["b"]),
    ("Due_Date == '10-JAN-2024'", ["a"]),
    # literals as strings, numbers compare as numbers
    ('Quantity == "2"', ["b"]),
    ("Quantity >= 2", ["b", "c"]),
    ("Quantity != 2", ["a", "c"]),
    # URL without part is its url; name without part only null tests
    ('Homepage == "https://a.example/x"', ["a"]),
    ('Homepage.url.startsWith("https://")', ["a"]),
    ("Owner_Name != null", ["a"]),
    ('Owner_Name.last_name == "Ng"', ["a"]),
    # whitespace anywhere, none needed
    ('Quantity==1||Quantity==3', ["a", "c"]),
    ('\tQuantity\n==\r\n1 ', ["a"]),
    ("ID != null", ["a", "b", "c"]),
    ("Added_Time >= '01-Jan-2000'", ["a", "b", "c"]),
]


@pytest.mark.parametrize("crit,want", CASES, ids=[c[0] for c in CASES])
def test_criteria_semantics(api, data, crit, want):
    got = titles(api, data, crit)
    assert got == want, f"{crit!r}: matched {got}, expected {want}"


def test_criteria_in_report_definition_and_query_combine(api, uniq):
    api.add_ok("Item", [{"Title": "p1", "Marker": uniq, "Price": "1.00", "Quantity": 1},
                        {"Title": "p2", "Marker": uniq, "Price": "2.00", "Quantity": 2},
                        {"Title": "p3", "Marker": uniq, "Price": "20.00", "Quantity": 2}])
    got = api.find("Cheap_Items", f'Marker == "{uniq}" && Quantity == 2')
    assert [x["Title"] for x in got] == ["p2"]
    # the query cannot widen the report's own criteria
    got = api.find("Cheap_Items", f'Marker == "{uniq}" || Price > 0')
    assert all(float(x["Price"]) < 10 for x in got), "query criteria widened the report"


@pytest.mark.parametrize("crit", ["", " ", "\t"])
def test_empty_criteria_never_means_all_on_writes(api, uniq, crit):
    """An empty criteria on update/delete by criteria is missing (401 1000)
    or invalid (400 3330); it never selects every record."""
    [rid] = api.add_ok("Item", [{"Title": "keep", "Marker": uniq}])
    for r in (api.update_where("All_Items", crit, {"Title": "wiped"}),
              api.delete_where("All_Items", crit)):
        b = body_of(r)
        assert (r.status_code, b.get("code")) in ((401, 1000), (400, 3330)), describe(r)
    assert api.get_ok("All_Items", rid)["Title"] == "keep"


def test_empty_criteria_on_read_is_no_filter_or_error(api, uniq):
    """`criteria=` on a read: either no filter, or 400 3330 (docs/criteria.md:
    the empty expression is an error at 0)."""
    api.add_ok("Item", [{"Title": "x", "Marker": uniq}])
    r = api.report("All_Items", {"criteria": "", "max_records": "200"})
    b = body_of(r)
    assert (r.status_code, b.get("code")) in ((200, 3000), (400, 3330)), describe(r)
