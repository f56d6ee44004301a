"""Routing: both path families, meta endpoints, unknown names, 404/405."""
import pytest

from fvtest import DATA_PREFIXES, body_of, describe, expect, expect_error, golden


@pytest.fixture(params=DATA_PREFIXES, ids=["creator", "api"])
def fam(request, node):
    return node.api(prefix=request.param)


def test_crud_on_both_path_families(fam, uniq):
    r = fam.add("Item", [{"Title": "fam", "Marker": uniq}])
    rid = golden("add_one", r)["result"][0]["data"]["ID"]
    golden("get_by_id", fam.get("All_Items", rid))
    b = golden("get_report", fam.report("All_Items", {"criteria": f'Marker == "{uniq}"'}))
    assert [x["ID"] for x in b["data"]] == [rid]
    golden("update_by_id", fam.update("All_Items", rid, {"Quantity": 2}))
    golden("update_by_criteria", fam.update_where("All_Items", f'Marker == "{uniq}"',
                                                  {"Quantity": 3}))
    assert fam.get_ok("All_Items", rid)["Quantity"] == "3"
    golden("delete_by_id", fam.delete("All_Items", rid))
    [rid2] = fam.add_ok("Item", [{"Title": "fam2", "Marker": uniq}])
    b = golden("delete_by_criteria", fam.delete_where("All_Items", f'Marker == "{uniq}"'))
    assert [x["data"]["ID"] for x in b["result"]] == [rid2]


def test_families_see_same_data(node, uniq):
    a = node.api(prefix=DATA_PREFIXES[0])
    b = node.api(prefix=DATA_PREFIXES[1])
    [rid] = a.add_ok("Item", [{"Title": "x", "Marker": uniq}])
    assert b.get_ok("All_Items", rid) == a.get_ok("All_Items", rid)


# ------------------------------------------------------------------ meta

def test_meta_applications(fam, node):
    for r in (fam.meta("applications"), fam.meta(node.owner, "applications")):
        b = golden("meta_applications", r)
        apps = {a["link_name"]: a for a in b["applications"]}
        assert "shop" in apps, describe(r)
        shop = apps["shop"]
        assert shop["application_name"] == "Shop"
        assert shop["date_format"] == "dd-MMM-yyyy"
        assert shop["time_zone"] == "UTC"
        assert shop["workspace_name"] == node.owner


def test_meta_forms(fam, node):
    r = fam.meta(node.owner, "shop", "forms")
    b = golden("meta_forms", r)
    assert [f["link_name"] for f in b["forms"]] == [
        "Customer", "Item", "Bulk", "Scratch", "Probe", "Empty", "Event"], describe(r)
    assert b["forms"][1]["display_name"] == "Item"


def test_meta_reports(fam, node):
    r = fam.meta(node.owner, "shop", "reports")
    b = golden("meta_reports", r)
    reps = {x["link_name"]: x for x in b["reports"]}
    assert list(reps) == ["All_Customers", "All_Items", "Item_Views", "Items_By_Quantity",
                          "Cheap_Items", "All_Bulk", "All_Scratch", "All_Probe", "All_Empty",
                          "All_Events"], describe(r)
    assert reps["All_Items"]["type"] == 1 and reps["All_Items"]["display_name"] == "All Items"
    assert reps["Items_By_Quantity"]["type"] == 6
    assert reps["All_Customers"]["display_name"] == "All_Customers"


def test_meta_pages_is_3920(fam, node):
    expect_error(fam.meta(node.owner, "shop", "pages"), 200, 3920)


@pytest.mark.local
def test_meta_reports_none_is_3930(fam, node):
    expect_error(fam.meta(node.owner, "noreports", "reports"), 200, 3930)


def test_meta_fields(fam, node):
    r = fam.meta(node.owner, "shop", "form", "Customer", "fields")
    b = golden("meta_fields", r)
    f = b["fields"]
    assert [x["link_name"] for x in f] == ["Customer_Code", "Company"]
    assert f[0]["display_name"] == "Customer Code" and f[0]["type"] == 1
    assert f[0]["mandatory"] is True and f[0]["unique"] is True and f[0]["max_char"] == 12
    assert f[1]["mandatory"] is False and f[1]["max_char"] == 255


def test_meta_unknown_names(fam, node):
    expect_error(fam.meta(node.owner, "nosuchapp", "forms"), 404, 2892)
    expect_error(fam.meta(node.owner, "nosuchapp", "reports"), 404, 2892)
    expect_error(fam.meta(node.owner, "shop", "form", "NoSuchForm", "fields"), 404, 2893)


# ------------------------------------------------------------------ unknown names

def test_unknown_app_form_report(fam):
    other = fam.clone(app="nosuchapp")
    expect_error(other.add("Item", [{"Title": "x"}]), 404, 2892)
    expect_error(other.report("All_Items"), 404, 2892)
    expect_error(fam.add("NoSuchForm", [{"Title": "x"}]), 404, 2893)
    expect_error(fam.report("NoSuchReport"), 404, 2894)
    expect_error(fam.get("NoSuchReport", "1"), 404, 2894)
    expect_error(fam.update("NoSuchReport", "1", {"Title": "x"}), 404, 2894)
    expect_error(fam.delete("NoSuchReport", "1"), 404, 2894)
    expect_error(fam.update_where("NoSuchReport", "ID != null", {"Title": "x"}), 404, 2894)
    expect_error(fam.delete_where("NoSuchReport", "ID != null"), 404, 2894)


def test_link_names_are_case_sensitive(fam):
    expect_error(fam.report("all_items"), 404, 2894)
    expect_error(fam.add("item", [{"Title": "x"}]), 404, 2893)


def test_display_name_is_not_a_link_name(fam):
    r = fam.request("GET", fam.data_path("report", "All Items"))
    expect_error(r, 404, 2894)


# ------------------------------------------------------------------ 404 / 405

@pytest.mark.parametrize("path", [
    "/",
    "/creator",
    "/creator/v2.1",
    "/creator/v2.1/nothing",
    "/creator/v2/data/acme/shop/report/All_Items",
    "/creator/v2.1/data/acme/shop/bogus/Item",
    "/creator/v2.1/data/acme/shop/report/All_Items/1/2/3/4",
    "/creator/v2.1/data/acme/shop",
    "/creator/v2.1/meta/acme/shop/nothing",
    "/api/v2.1/acme/shop/bogus/Item",
    "/favicon.ico",
    "/healthz",
    "/metrics",
])
def test_unknown_route_is_404_1000(api, path):
    r = api.request("GET", path)
    expect_error(r, 404, 1000)


@pytest.mark.parametrize("method,parts", [
    ("PUT", ("form", "Item")),
    ("DELETE", ("form", "Item")),
    ("PATCH", ("form", "Item")),
    ("GET", ("form", "Item")),
    ("PUT", ("report", "All_Items")),
    ("POST", ("report", "All_Items")),
    ("PUT", ("report", "All_Items", "1")),
    ("POST", ("report", "All_Items", "1")),
])
def test_method_not_allowed_is_405_1020(api, method, parts):
    r = api.request(method, api.data_path(*parts), json={"data": {"Title": "x"}})
    expect_error(r, 405, 1020)


def test_meta_method_not_allowed(api, node):
    r = api.request("POST", f"{api.meta_prefix}/{node.owner}/shop/forms", json={})
    expect_error(r, 405, 1020)


def test_every_response_is_json_with_code(api):
    """Errors still carry a JSON body with an integer code (creator-api.md 4)."""
    for method, path in (("GET", "/nothing"), ("PUT", api.data_path("form", "Item")),
                         ("GET", api.data_path("report", "NoSuch"))):
        r = api.request(method, path)
        b = body_of(r)
        assert isinstance(b.get("code"), int), describe(r)
        assert r.headers.get("Content-Type", "").startswith("application/json"), describe(r)


def test_percent_encoded_path(api, uniq):
    """Paths are percent-decoded before routing."""
    [rid] = api.add_ok("Item", [{"Title": "enc", "Marker": uniq}])
    r = api.request("GET", api.data_path("report", "All%5FItems", rid))
    b = expect(r, 200, 3000)
    assert b["data"]["ID"] == rid
