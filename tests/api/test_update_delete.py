"""Update and delete, by ID and by criteria (creator-api.md 5.4-5.7)."""
import pytest

from fvtest import body_of, describe, error_text, expect, expect_error, golden


def bulk(api, batch, n, state="new"):
    return api.add_many("Bulk", [{"N": i, "Batch": batch, "State": state} for i in range(n)])


def states(api, batch):
    return sorted(x["State"] for x in api.find("All_Bulk", f'Batch == "{batch}"'))


# ------------------------------------------------------------------ by ID

def test_update_by_id(api, uniq):
    [rid] = api.add_ok("Item", [{"Title": "before", "Marker": uniq, "Quantity": 1,
                                 "Price": "9.99"}])
    r = api.update("All_Items", rid, {"Title": "after", "Quantity": 7})
    b = golden("update_by_id", r)
    assert b["data"]["ID"] == rid
    rec = api.get_ok("All_Items", rid, {"field_config": "all"})
    assert rec["Title"] == "after" and rec["Quantity"] == "7"
    assert rec["Price"] == "9.99" and rec["Marker"] == uniq, "unlisted fields must not change"


def test_update_by_id_result_fields(api, uniq):
    [rid] = api.add_ok("Item", [{"Title": "x", "Marker": uniq}])
    r = api.update("All_Items", rid, {"Quantity": 3},
                   extra={"result": {"fields": ["Quantity"], "message": True}})
    b = expect(r, 200, 3000)
    assert b["data"] == {"ID": rid, "Quantity": "3"}, describe(r)
    assert b["message"] == "Data Updated Successfully!"


def test_update_by_id_invalid_value_changes_nothing(api, uniq):
    [rid] = api.add_ok("Item", [{"Title": "keep", "Marker": uniq, "Quantity": 1}])
    r = api.update("All_Items", rid, {"Quantity": "abc", "Title": "changed"})
    b = body_of(r)
    assert r.status_code == 200 and b.get("code") == 3001, \
        f"expected HTTP 200 code 3001\n  {describe(r)}"
    assert "Quantity" in error_text(b), describe(r)
    rec = api.get_ok("All_Items", rid)
    assert rec["Title"] == "keep" and rec["Quantity"] == "1"


def test_update_by_id_required_cleared_refused(api, uniq):
    [rid] = api.add_ok("Item", [{"Title": "keep", "Marker": uniq}])
    r = api.update("All_Items", rid, {"Title": ""})
    b = expect(r, 200, 3001)
    assert "Title" in error_text(b), describe(r)
    assert api.get_ok("All_Items", rid)["Title"] == "keep"


def test_update_by_id_unique_conflict(api, uniq):
    a, b_ = api.add_ok("Item", [{"Title": "a", "Marker": uniq, "Sku": "A-" + uniq},
                                {"Title": "b", "Marker": uniq, "Sku": "B-" + uniq}])
    r = api.update("All_Items", b_, {"Sku": "A-" + uniq})
    expect(r, 200, 3001)
    assert api.get_ok("All_Items", b_, {"field_config": "all"})["Sku"] == "B-" + uniq


def test_update_by_id_too_many_digits(api, uniq):
    [rid] = api.add_ok("Item", [{"Title": "a", "Marker": uniq, "Quantity": 5}])
    expect(api.update("All_Items", rid, {"Quantity": "1234567890123456"}), 200, 8011)
    expect(api.update("All_Items", rid, {"Price": "1.001"}), 200, 8012)
    assert api.get_ok("All_Items", rid)["Quantity"] == "5"


def test_update_by_id_missing_is_3190(api):
    expect_error(api.update("All_Items", "1", {"Title": "x"}), 200, 3190)


def test_update_by_id_malformed_body_3020(api, uniq):
    [rid] = api.add_ok("Item", [{"Title": "a", "Marker": uniq}])
    r = api.request("PATCH", api.data_path("report", "All_Items", rid), data=b'{"data": {',
                    headers={"Content-Type": "application/json"})
    expect_error(r, 400, 3020)
    r = api.request("PATCH", api.data_path("report", "All_Items", rid), json={"nodata": 1})
    expect_error(r, 400, 3020)


def test_update_modified_time_moves(api, uniq):
    import time
    [rid] = api.add_ok("Item", [{"Title": "a", "Marker": uniq}])
    before = api.get_ok("All_Items", rid, {"field_config": "custom",
                                           "fields": "Added_Time,Modified_Time"})
    time.sleep(1.1)
    expect(api.update("All_Items", rid, {"Title": "b"}), 200, 3000)
    after = api.get_ok("All_Items", rid, {"field_config": "custom",
                                          "fields": "Added_Time,Modified_Time"})
    assert after["Added_Time"] == before["Added_Time"], (before, after)
    assert after["Modified_Time"] != before["Modified_Time"], (before, after)


def test_delete_by_id(api, uniq):
    keep, gone = api.add_ok("Item", [{"Title": "keep", "Marker": uniq},
                                     {"Title": "gone", "Marker": uniq}])
    r = api.delete("All_Items", gone)
    b = golden("delete_by_id", r)
    assert b["data"]["ID"] == gone
    expect_error(api.get("All_Items", gone), 200, 3190)
    expect_error(api.delete("All_Items", gone), 200, 3190)
    assert [x["ID"] for x in api.find("All_Items", f'Marker == "{uniq}"')] == [keep]


def test_deleted_unique_value_reusable(api, uniq):
    sku = "R-" + uniq
    [rid] = api.add_ok("Item", [{"Title": "a", "Marker": uniq, "Sku": sku}])
    expect(api.delete("All_Items", rid), 200, 3000)
    api.add_ok("Item", [{"Title": "b", "Marker": uniq, "Sku": sku}])


# ------------------------------------------------------------------ by criteria

def test_update_by_criteria(api, uniq):
    ids = bulk(api, uniq, 3)
    bulk(api, uniq + "-other", 2)
    r = api.update_where("All_Bulk", f'Batch == "{uniq}"', {"State": "done"})
    b = golden("update_by_criteria", r)
    assert sorted(x["data"]["ID"] for x in b["result"]) == sorted(ids)
    assert states(api, uniq) == ["done"] * 3
    assert states(api, uniq + "-other") == ["new"] * 2


def test_update_by_criteria_missing_criteria_is_401_1000(api, uniq):
    bulk(api, uniq, 1)
    r = api.update_where("All_Bulk", None, {"State": "done"})
    expect_error(r, 401, 1000)
    assert states(api, uniq) == ["new"]


def test_update_by_criteria_no_match_is_404_3100(api):
    r = api.update_where("All_Bulk", 'Batch == "no-such-batch"', {"State": "x"})
    expect_error(r, 404, 3100)


def test_update_by_criteria_invalid_value(api, uniq):
    bulk(api, uniq, 2)
    r = api.update_where("All_Bulk", f'Batch == "{uniq}"', {"N": "not-a-number"})
    b = body_of(r)
    assert r.status_code == 200 and b.get("code") != 3000, describe(r)
    for res in b.get("result", []):
        assert res["code"] != 3000 and "N" in error_text(res), describe(r)
    got = api.find("All_Bulk", f'Batch == "{uniq}"')
    assert sorted(x["N"] for x in got) == ["0", "1"]


def test_update_by_criteria_over_200_is_3960(api, uniq):
    bulk(api, uniq, 250)
    r = api.update_where("All_Bulk", f'Batch == "{uniq}"', {"State": "done"})
    b = expect_error(r, 200, 3960)
    assert not b.get("result"), describe(r)
    assert states(api, uniq) == ["new"] * 250, "3960 must change nothing"


@pytest.mark.parametrize("where", ["query", "body_string", "body_bool"])
def test_update_by_criteria_process_until_limit(api, uniq, where):
    bulk(api, uniq, 250)
    crit = f'Batch == "{uniq}" && State == "new"'
    params = extra = None
    if where == "query":
        params = {"process_until_limit": "true"}
    elif where == "body_string":
        extra = {"process_until_limit": "true"}
    else:
        extra = {"process_until_limit": True}
    r1 = api.update_where("All_Bulk", crit, {"State": "done"}, params=params, extra=extra)
    b1 = expect(r1, 200, 3000)
    assert len(b1["result"]) == 200 and b1["more_records"] is True, \
        f"first call: 200 results and more_records true\n  {describe(r1)}"
    assert states(api, uniq).count("done") == 200
    r2 = api.update_where("All_Bulk", crit, {"State": "done"}, params=params, extra=extra)
    b2 = golden("update_by_criteria", r2)
    assert len(b2["result"]) == 50, describe(r2)
    ids = [x["data"]["ID"] for x in b1["result"] + b2["result"]]
    assert len(set(ids)) == 250
    assert states(api, uniq) == ["done"] * 250
    expect_error(api.update_where("All_Bulk", crit, {"State": "done"}, params=params,
                                  extra=extra), 404, 3100)


def test_update_by_criteria_exactly_200(api, uniq):
    bulk(api, uniq, 200)
    r = api.update_where("All_Bulk", f'Batch == "{uniq}"', {"State": "done"})
    b = golden("update_by_criteria", r)
    assert len(b["result"]) == 200
    assert states(api, uniq) == ["done"] * 200


def test_delete_by_criteria(api, uniq):
    ids = bulk(api, uniq, 3)
    keep = bulk(api, uniq + "-keep", 1)
    r = api.delete_where("All_Bulk", f'Batch == "{uniq}"')
    b = golden("delete_by_criteria", r)
    assert sorted(x["data"]["ID"] for x in b["result"]) == sorted(ids)
    expect(api.report("All_Bulk", {"criteria": f'Batch == "{uniq}"'}), 200, 9280)
    assert [x["ID"] for x in api.find("All_Bulk", f'Batch == "{uniq}-keep"')] == keep
    for i in ids:
        expect(api.get("All_Bulk", i), 200, 3190)


def test_delete_by_criteria_missing_criteria_is_401_1000(api, uniq):
    bulk(api, uniq, 1)
    r = api.delete_where("All_Bulk", None)
    expect_error(r, 401, 1000)
    assert states(api, uniq) == ["new"]


def test_delete_by_criteria_no_match_is_404_3100(api):
    expect_error(api.delete_where("All_Bulk", 'Batch == "no-such-batch"'), 404, 3100)


def test_delete_by_criteria_over_200(api, uniq):
    bulk(api, uniq, 230)
    crit = f'Batch == "{uniq}"'
    expect_error(api.delete_where("All_Bulk", crit), 200, 3960)
    assert len(states(api, uniq)) == 230, "3960 must delete nothing"
    r1 = api.delete_where("All_Bulk", crit, params={"process_until_limit": "true"})
    b1 = expect(r1, 200, 3000)
    assert len(b1["result"]) == 200 and b1["more_records"] is True, describe(r1)
    assert len(states(api, uniq)) == 30
    r2 = api.delete_where("All_Bulk", crit, extra={"process_until_limit": "true"})
    b2 = golden("delete_by_criteria", r2)
    assert len(b2["result"]) == 30
    expect(api.report("All_Bulk", {"criteria": crit}), 200, 9280)


def test_delete_all_with_id_not_null(api):
    """A live client deletes everything with `ID!=null` (creator-api.md 5.7).
    Scratch is written only by this test."""
    ids = api.add_ok("Scratch", [{"Label": f"s{i}"} for i in range(5)])
    got = api.find("All_Scratch", "ID!=null")
    assert sorted(x["ID"] for x in got) == sorted(ids)
    r = api.delete_where("All_Scratch", "ID!=null")
    b = golden("delete_by_criteria", r)
    assert sorted(x["data"]["ID"] for x in b["result"]) == sorted(ids)
    expect(api.report("All_Scratch"), 200, 9220)


def test_criteria_parse_error_on_update_and_delete(api, uniq):
    bulk(api, uniq, 1)
    expect_error(api.update_where("All_Bulk", 'Batch == ', {"State": "x"}), 400, 3330)
    expect_error(api.delete_where("All_Bulk", 'Batch ==== "x"'), 400, 3330)
    assert states(api, uniq) == ["new"]
