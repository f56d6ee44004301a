"""Get records / get by ID: field_config, max_records, record_cursor,
from/limit, sort, report criteria, empty results (creator-api.md 5.2, 5.3,
docs/api.md "Reads")."""
import uuid

import pytest

from fvtest import body_of, describe, expect, expect_error, golden

PAGE_N = 1100


@pytest.fixture(scope="module")
def paged(node):
    """1100 Bulk records in one batch; returns (batch, {N: ID})."""
    api = node.api()
    batch = "page-" + uuid.uuid4().hex[:10]
    recs = [{"N": i, "Batch": batch, "State": "new"} for i in range(PAGE_N)]
    ids = api.add_many("Bulk", recs)
    return batch, dict(enumerate(ids))


@pytest.fixture(scope="module")
def views(node):
    api = node.api()
    marker = "views-" + uuid.uuid4().hex[:10]
    ids = api.add_ok("Item", [
        {"Title": "v1", "Quantity": 1, "Price": "1.00", "Description": "d1", "Marker": marker},
        {"Title": "v2", "Quantity": 2, "Price": "2.00", "Description": "d2", "Marker": marker},
    ])
    return marker, ids


def test_get_report_shape(api, views):
    marker, ids = views
    r = api.report("All_Items", {"criteria": f'Marker == "{marker}"'})
    b = golden("get_report", r)
    assert sorted(x["ID"] for x in b["data"]) == sorted(ids)
    assert "record_cursor" not in r.headers, describe(r)


def test_get_by_id_shape(api, views):
    _, ids = views
    r = api.get("All_Items", ids[0])
    b = golden("get_by_id", r)
    assert b["data"]["ID"] == ids[0] and b["data"]["Title"] == "v1"


def test_get_by_id_missing_is_3190(api):
    expect_error(api.get("All_Items", "1"), 200, 3190)
    expect_error(api.get("All_Items", "18446744073709551615"), 200, 3190)


def test_get_by_id_of_other_form_is_3190(api, views, paged):
    """An ID of a Bulk record read through an Item report."""
    _, by_n = paged
    expect_error(api.get("All_Items", by_n[0]), 200, 3190)


# ------------------------------------------------------------- field_config

def keys_of(b):
    return [set(x) for x in b["data"]]


def test_field_config_quick_view_is_default(api, views):
    marker, _ = views
    for params in ({}, {"field_config": "quick_view"}):
        params["criteria"] = f'Marker == "{marker}"'
        r = api.report("Item_Views", params)
        b = expect(r, 200, 3000)
        assert keys_of(b) == [{"ID", "Title", "Quantity"}] * 2, describe(r)


def test_field_config_detail_view(api, views):
    marker, _ = views
    r = api.report("Item_Views", {"criteria": f'Marker == "{marker}"',
                                  "field_config": "detail_view"})
    b = expect(r, 200, 3000)
    assert keys_of(b) == [{"ID", "Title", "Quantity", "Price", "Description",
                           "Added_Time"}] * 2, describe(r)
    for rec in b["data"]:
        assert rec["Price"] in ("1.00", "2.00") and rec["Description"] in ("d1", "d2")
        assert isinstance(rec["Added_Time"], str) and rec["Added_Time"], rec


def test_field_config_all(api, views):
    marker, _ = views
    r = api.report("Item_Views", {"criteria": f'Marker == "{marker}"', "field_config": "all"})
    b = expect(r, 200, 3000)
    for rec in b["data"]:
        for f in ("ID", "Title", "Quantity", "Price", "Description", "Marker", "Category",
                  "Note", "Serial"):
            assert f in rec, f"field_config=all lacks '{f}': {rec}"


def test_field_config_custom(api, views):
    marker, _ = views
    r = api.report("Item_Views", {"criteria": f'Marker == "{marker}"',
                                  "field_config": "custom", "fields": "Title,Price"})
    b = expect(r, 200, 3000)
    assert keys_of(b) == [{"ID", "Title", "Price"}] * 2, describe(r)


def test_field_config_custom_by_id(api, views):
    _, ids = views
    r = api.get("Item_Views", ids[1], {"field_config": "custom", "fields": "Description"})
    b = expect(r, 200, 3000)
    assert b["data"] == {"ID": ids[1], "Description": "d2"}, describe(r)


def test_field_config_detail_view_by_id(api, views):
    _, ids = views
    r = api.get("Item_Views", ids[0], {"field_config": "detail_view"})
    b = expect(r, 200, 3000)
    assert set(b["data"]) == {"ID", "Title", "Quantity", "Price", "Description",
                              "Added_Time"}, describe(r)


def test_fields_unknown_is_3710(api, views):
    marker, _ = views
    r = api.report("Item_Views", {"criteria": f'Marker == "{marker}"',
                                  "field_config": "custom", "fields": "Title,No_Such_Field"})
    b = expect_error(r, 400, 3710)
    assert "No_Such_Field" in str(b), describe(r)


# ------------------------------------------------------------- max_records

@pytest.mark.parametrize("n", [200, 500, 1000])
def test_max_records_page_size(api, paged, n):
    batch, _ = paged
    r = api.report("All_Bulk", {"criteria": f'Batch == "{batch}"', "max_records": str(n)})
    b = expect(r, 200, 3000)
    assert len(b["data"]) == n, f"max_records={n}: got {len(b['data'])}\n  {describe(r)}"
    assert [x["N"] for x in b["data"]] == [str(i) for i in range(n)]
    assert r.headers.get("record_cursor"), f"more remain: record_cursor expected\n  {describe(r)}"


def test_max_records_default_200(api, paged):
    batch, _ = paged
    r = api.report("All_Bulk", {"criteria": f'Batch == "{batch}"'})
    b = expect(r, 200, 3000)
    assert len(b["data"]) == 200, describe(r)


@pytest.mark.parametrize("bad", ["100", "0", "-1", "201", "2000", "abc", "1000.0"])
def test_max_records_bad_is_3970(api, paged, bad):
    batch, _ = paged
    r = api.report("All_Bulk", {"criteria": f'Batch == "{batch}"', "max_records": bad})
    expect_error(r, 200, 3970)


@pytest.mark.parametrize("max_records,pages", [(1000, 2), (500, 3), (200, 6)])
def test_record_cursor_sees_every_record_once(api, paged, max_records, pages):
    batch, by_n = paged
    recs, n_pages = api.scan("All_Bulk", {"criteria": f'Batch == "{batch}"'},
                             max_records=max_records)
    ids = [x["ID"] for x in recs]
    assert len(ids) == len(set(ids)), "a record was returned twice"
    assert sorted(ids) == sorted(by_n.values()), \
        f"{len(set(by_n.values()) - set(ids))} records never returned"
    assert [x["N"] for x in recs] == [str(i) for i in range(PAGE_N)], "sort order broken"
    assert n_pages == pages


def test_record_cursor_keeps_fields_and_criteria(api, paged):
    """A continued scan keeps the first call's criteria and fields."""
    batch, _ = paged
    p = {"criteria": f'Batch == "{batch}" && N >= 50', "max_records": "500",
         "field_config": "custom", "fields": "N"}
    r1 = api.report("All_Bulk", p)
    b1 = expect(r1, 200, 3000)
    cur = r1.headers.get("record_cursor")
    assert cur, describe(r1)
    r2 = api.report("All_Bulk", p, headers={"record_cursor": cur})
    b2 = expect(r2, 200, 3000)
    r3 = api.report("All_Bulk", p, headers={"record_cursor": r2.headers["record_cursor"]})
    b3 = expect(r3, 200, 3000)
    assert "record_cursor" not in r3.headers, describe(r3)
    ns = [int(x["N"]) for b in (b1, b2, b3) for x in b["data"]]
    assert ns == list(range(50, PAGE_N))
    assert all(set(x) == {"ID", "N"} for b in (b1, b2, b3) for x in b["data"])


@pytest.mark.parametrize("cursor", ["garbage", "AAAAAAAAAAAAAAAAAAAAAAAA", "x" * 150])
def test_record_cursor_malformed_is_400_1000(api, paged, cursor):
    batch, _ = paged
    r = api.report("All_Bulk", {"criteria": f'Batch == "{batch}"'},
                   headers={"record_cursor": cursor})
    expect_error(r, 400, 1000)


def test_record_cursor_of_other_report_refused(api, paged, views):
    batch, _ = paged
    r1 = api.report("All_Bulk", {"criteria": f'Batch == "{batch}"'})
    cur = r1.headers.get("record_cursor")
    assert cur, describe(r1)
    r2 = api.report("All_Items", headers={"record_cursor": cur})
    expect_error(r2, 400, 1000)


# ------------------------------------------------------------- from / limit

def test_from_limit(api, paged):
    batch, _ = paged
    crit = f'Batch == "{batch}"'
    b = expect(api.report("All_Bulk", {"criteria": crit, "from": "1", "limit": "10"}), 200, 3000)
    assert [x["N"] for x in b["data"]] == [str(i) for i in range(10)]
    b = expect(api.report("All_Bulk", {"criteria": crit, "from": "11", "limit": "10"}), 200, 3000)
    assert [x["N"] for x in b["data"]] == [str(i) for i in range(10, 20)]
    b = expect(api.report("All_Bulk", {"criteria": crit, "from": "1096", "limit": "200"}),
               200, 3000)
    assert [x["N"] for x in b["data"]] == [str(i) for i in range(1095, PAGE_N)]


def test_limit_200_ok_201_is_3970(api, paged):
    batch, _ = paged
    crit = f'Batch == "{batch}"'
    b = expect(api.report("All_Bulk", {"criteria": crit, "limit": "200"}), 200, 3000)
    assert len(b["data"]) == 200
    expect_error(api.report("All_Bulk", {"criteria": crit, "limit": "201"}), 200, 3970)


# ------------------------------------------------------------- sort, report criteria

def test_report_sort_numeric_desc(api, uniq):
    api.add_ok("Item", [{"Title": f"s{q}", "Marker": uniq, "Quantity": q}
                        for q in (9, 100, 10, 55)])
    got = api.find("Items_By_Quantity", f'Marker == "{uniq}"')
    assert [x["Title"] for x in got] == ["s100", "s55", "s10", "s9"], \
        "Items_By_Quantity sorts by Quantity desc, numerically"


def test_report_criteria_limits_reads(api, uniq):
    cheap, dear = api.add_ok("Item", [{"Title": "cheap", "Marker": uniq, "Price": "5.00"},
                                      {"Title": "dear", "Marker": uniq, "Price": "50.00"}])
    got = api.find("Cheap_Items", f'Marker == "{uniq}"')
    assert [x["ID"] for x in got] == [cheap]
    assert api.get_ok("Cheap_Items", cheap)["ID"] == cheap
    expect_error(api.get("Cheap_Items", dear), 200, 3190)


def test_report_criteria_limits_writes(api, uniq):
    cheap, dear = api.add_ok("Item", [{"Title": "cheap", "Marker": uniq, "Price": "5.00"},
                                      {"Title": "dear", "Marker": uniq, "Price": "50.00"}])
    expect_error(api.update("Cheap_Items", dear, {"Title": "hacked"}), 200, 3190)
    expect_error(api.delete("Cheap_Items", dear), 200, 3190)
    r = api.delete_where("Cheap_Items", f'Marker == "{uniq}"')
    b = golden("delete_by_criteria", r)
    assert [x["data"]["ID"] for x in b["result"]] == [cheap]
    rec = api.get_ok("All_Items", dear)
    assert rec["Title"] == "dear"
    expect(api.get("All_Items", cheap), 200, 3190)


# ------------------------------------------------------------- empty results

def test_empty_report_is_9220(api):
    r = api.report("All_Empty")
    expect_error(r, 200, 9220)
    assert "data" not in body_of(r), describe(r)


def test_no_match_is_9280(api):
    r = api.report("All_Items", {"criteria": 'Marker == "no-such-marker-ever"'})
    expect_error(r, 200, 9280)
    assert "data" not in body_of(r), describe(r)


def test_criteria_id_not_null(api, views):
    marker, ids = views
    got = api.find("All_Items", f'ID != null && Marker == "{marker}"')
    assert sorted(x["ID"] for x in got) == sorted(ids)
    got = api.find("All_Items", f'ID!=null&&Marker=="{marker}"')
    assert sorted(x["ID"] for x in got) == sorted(ids)


# ------------------------------------------------------------- criteria errors

@pytest.mark.parametrize("crit,pos", [
    ('Title ?? "a"', 6),
    ('Title == "a" &&', 15),
    ('(Title == "a"', 13),
    ('Title == "unterminated', 9),
])
def test_criteria_parse_error_3330(api, crit, pos):
    """HTTP 400, code 3330, the 0-based byte position in the message
    (docs/api.md, docs/criteria.md "at <pos>:")."""
    import re
    r = api.report("All_Items", {"criteria": crit})
    b = expect_error(r, 400, 3330)
    m = re.search(r"\bat (\d+):", b.get("message", ""))
    assert m and int(m.group(1)) == pos, f"message must give byte position {pos}: {b}"


def test_criteria_unknown_field(api):
    r = api.report("All_Items", {"criteria": 'No_Such_Field == "a"'})
    b = expect_error(r, 400, 3330)
    assert "No_Such_Field" in b["message"], describe(r)


# ------------------------------------------------------------- hostile input

@pytest.mark.parametrize("crit", [
    'Marker == "x" || 1 == 1',
    'Marker == "x\\" OR 1=1 --"',
    "Marker == 'x' OR '1'='1'",
    'Marker == "x"; DROP TABLE records; --',
    'Marker == "x") OR (1=1',
    'Marker == "%" || Marker == "_"',
])
def test_criteria_injection_matches_nothing(api, views, crit):
    """Criteria are parsed, never pasted into SQL: these either fail to
    parse (3330) or match nothing; they never return records."""
    r = api.report("All_Items", {"criteria": crit})
    b = body_of(r)
    assert (r.status_code, b.get("code")) in ((400, 3330), (200, 9280)), describe(r)


def test_criteria_like_wildcards_are_literal(api, uniq):
    api.add_ok("Item", [{"Title": "a%b", "Marker": uniq}, {"Title": "axb", "Marker": uniq},
                        {"Title": "a_b", "Marker": uniq}])
    got = api.find("All_Items", f'Marker == "{uniq}" && Title.contains("%")')
    assert [x["Title"] for x in got] == ["a%b"]
    got = api.find("All_Items", f'Marker == "{uniq}" && Title.startsWith("a_")')
    assert [x["Title"] for x in got] == ["a_b"]
    got = api.find("All_Items", f'Marker == "{uniq}" && Title == "a%b"')
    assert [x["Title"] for x in got] == ["a%b"]


@pytest.mark.parametrize("fields", ["Title;DROP TABLE x", "Title,\"ID\"", "c_Title", "rowid"])
def test_fields_injection_is_3710(api, views, fields):
    marker, _ = views
    r = api.report("Item_Views", {"criteria": f'Marker == "{marker}"',
                                  "field_config": "custom", "fields": fields})
    expect_error(r, 400, 3710)


# ------------------------------------------------------------- cursor robustness

def test_record_cursor_ties_on_sort_field(api, uniq):
    """All_Bulk sorts by N; 450 records with the same N still page exactly once."""
    ids = api.add_many("Bulk", [{"N": 7, "Batch": uniq} for _ in range(450)])
    recs, pages = api.scan("All_Bulk", {"criteria": f'Batch == "{uniq}"'}, max_records=200)
    got = [x["ID"] for x in recs]
    assert len(got) == len(set(got)) == 450 and sorted(got) == sorted(ids), \
        f"{len(got)} returned, {len(set(got))} distinct, expected 450"
    assert pages == 3


def test_record_cursor_survives_deletes_and_inserts(api, uniq):
    """The cursor continues after the last record returned: deleting records
    already seen, or inserting records before the position, neither skips
    nor repeats the rest."""
    ids = api.add_many("Bulk", [{"N": i, "Batch": uniq} for i in range(600)])
    crit = f'Batch == "{uniq}"'
    r1 = api.report("All_Bulk", {"criteria": crit, "max_records": "200"})
    b1 = expect(r1, 200, 3000)
    cur = r1.headers.get("record_cursor")
    assert cur, describe(r1)
    seen = [x["ID"] for x in b1["data"]]
    assert seen == ids[:200]
    # delete 50 records already returned, insert 10 that sort before the position
    expect(api.delete_where("All_Bulk", f'{crit} && N < 50'), 200, 3000)
    api.add_ok("Bulk", [{"N": -1 - i, "Batch": uniq} for i in range(10)])
    rest = []
    while cur:
        r = api.report("All_Bulk", {"criteria": crit, "max_records": "200"},
                       headers={"record_cursor": cur})
        rest += [x["ID"] for x in expect(r, 200, 3000)["data"]]
        cur = r.headers.get("record_cursor")
    assert rest == ids[200:], \
        f"after the cursor: {len(rest)} records, expected the 400 not yet returned " \
        f"(missing {len(set(ids[200:]) - set(rest))}, repeated {len(set(rest) & set(seen))})"
