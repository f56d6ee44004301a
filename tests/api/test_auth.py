"""Tokens, scopes and tenant isolation (creator-api.md 2, docs/api.md)."""
import json
import time

import pytest

from fvtest import body_of, describe, expect, expect_error

pytestmark = pytest.mark.local  # extra tokens and a second tenant


# Matches nothing, so a request wrongly let through cannot wipe shared data.
NO_MATCH = 'ID != null && Title == "no-such-title-ever"'


def routes(api, rid="1"):
    """(name, callable) for one request of every data/meta endpoint."""
    return [
        ("add", lambda: api.add("Item", [{"Title": "auth-probe"}])),
        ("report", lambda: api.report("All_Items")),
        ("by_id", lambda: api.get("All_Items", rid)),
        ("update_id", lambda: api.update("All_Items", rid, {"Title": "x"})),
        ("update_crit", lambda: api.update_where("All_Items", NO_MATCH, {"Title": "x"})),
        ("delete_id", lambda: api.delete("All_Items", rid)),
        ("delete_crit", lambda: api.delete_where("All_Items", NO_MATCH)),
        ("meta_apps", lambda: api.meta("applications")),
        ("meta_owner_apps", lambda: api.meta(api.owner, "applications")),
        ("meta_forms", lambda: api.meta(api.owner, api.app, "forms")),
        ("meta_reports", lambda: api.meta(api.owner, api.app, "reports")),
        ("meta_fields", lambda: api.meta(api.owner, api.app, "form", "Item", "fields")),
    ]


def item_count(node):
    recs, _ = node.api().scan("All_Items")
    return len(recs)


@pytest.mark.parametrize("auth", [None, "", "Zoho-oauthtoken", "Zoho-oauthtoken garbage",
                                  "Bearer garbage", "Zoho-oauthtoken " + "A" * 64,
                                  "Basic dXNlcjpwYXNz", "garbage"])
def test_bad_or_missing_token_is_401_1030(node, auth):
    api = node.api(token=None)
    before = item_count(node)
    for name, call in routes(api):
        api.s.headers.pop("Authorization", None)
        if auth is not None:
            api.s.headers["Authorization"] = auth
        r = call()
        b = expect_error(r, 401, 1030)
        assert "data" not in b and "applications" not in b, f"{name}: {describe(r)}"
    assert item_count(node) == before, "a refused request wrote something"


def test_token_under_wrong_scheme_is_1030(node):
    tok = node.tokens["all"]
    api = node.api(token=None)
    for auth in (f"Basic {tok}", f"Token {tok}", tok, f"Zoho-oauthtoken  {tok}x"):
        api.s.headers["Authorization"] = auth
        expect_error(api.report("All_Items"), 401, 1030)


@pytest.mark.parametrize("scheme", ["Zoho-oauthtoken", "Bearer"])
def test_both_auth_schemes(node, uniq, scheme):
    api = node.api(scheme=scheme)
    [rid] = api.add_ok("Item", [{"Title": "s", "Marker": uniq}])
    assert api.get_ok("All_Items", rid)["Marker"] == uniq


def test_expired_token_is_1030(node):
    wait = node.expired_at + 1.0 - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    api = node.api("expired")
    for name, call in routes(api):
        expect_error(call(), 401, 1030)


SCOPE_OF = {
    "add": "create", "report": "read", "by_id": "read", "update_id": "update",
    "update_crit": "update", "delete_id": "delete", "delete_crit": "delete",
    "meta_apps": "dashboard", "meta_owner_apps": "dashboard", "meta_forms": "meta_app",
    "meta_reports": "meta_app", "meta_fields": "meta_form",
}


@pytest.mark.parametrize("token", sorted(set(SCOPE_OF.values())))
def test_scopes(node, token):
    """A token passes exactly the endpoints of its scope; the others get
    401 2945 and do nothing."""
    [rid] = node.api().add_ok("Item", [{"Title": "scope-target"}])
    before = item_count(node)
    api = node.api(token)
    for name, call in routes(api, rid):
        if SCOPE_OF[name] == token:
            continue
        r = call()
        expect_error(r, 401, 2945)
    assert item_count(node) == before
    assert node.api().get_ok("All_Items", rid)["Title"] == "scope-target"
    # and the allowed endpoints pass the scope check
    for name, call in routes(api, rid):
        if SCOPE_OF[name] != token or name in ("delete_crit", "update_crit"):
            continue
        r = call()
        b = body_of(r)
        assert b.get("code") not in (1030, 2945, 2933), f"{name} with {token}: {describe(r)}"


def beta_record(node):
    beta = node.api("beta", owner="beta")
    [rid] = beta.add_ok("Item", [{"Title": "beta-secret", "Marker": "beta-secret"}])
    return beta, rid


def test_token_of_other_tenant_is_403_2933(node):
    beta, rid = beta_record(node)
    acme_on_beta = node.api("all", owner="beta")
    for name, call in routes(acme_on_beta, rid):
        if name == "meta_apps":
            continue  # no owner in that URL: it lists the token's own apps
        r = call()
        b = expect_error(r, 403, 2933)
        assert "beta-secret" not in r.text, f"{name} leaked data: {describe(r)}"
        assert "applications" not in b and "forms" not in b
    rec = beta.get_ok("All_Items", rid)
    assert rec["Title"] == "beta-secret", "beta's record changed through acme's token"
    # the other way round too
    beta_on_acme = node.api("beta", owner="acme")
    expect_error(beta_on_acme.report("All_Items"), 403, 2933)


def test_unknown_owner_is_2933_not_1040(node):
    """docs/api.md: a token on another tenant's URL gets 403 2933 whether or
    not that owner exists (no tenant enumeration)."""
    api = node.api("all", owner="nosuchowner")
    for name, call in routes(api):
        if name == "meta_apps":
            continue
        r = call()
        expect_error(r, 403, 2933)
    r_known = node.api("all", owner="beta").report("All_Items")
    r_unknown = api.report("All_Items")
    known = json.dumps(body_of(r_known)).replace("beta", "<owner>")
    unknown = json.dumps(body_of(r_unknown)).replace("nosuchowner", "<owner>")
    assert r_known.status_code == r_unknown.status_code and known == unknown, \
        f"existing and missing owners must be indistinguishable: {known} vs {unknown}"


def test_other_tenant_app_list_isolated(node):
    b = expect(node.api().meta("applications"), 200, 3000)
    names = [a["link_name"] for a in b["applications"]]
    assert "beta_only" not in names and "shop" in names, names
    b = expect(node.api("beta", owner="beta").meta("applications"), 200, 3000)
    names = [a["link_name"] for a in b["applications"]]
    assert "beta_only" in names and "noreports" not in names, names


def test_tenant_data_isolated_same_app_name(node, uniq):
    """acme and beta both have app 'shop': records never cross."""
    acme = node.api()
    beta = node.api("beta", owner="beta")
    [a_id] = acme.add_ok("Item", [{"Title": "acme-only", "Marker": uniq}])
    expect(beta.report("All_Items", {"criteria": f'Marker == "{uniq}"'}), 200, 9280)
    expect(beta.get("All_Items", a_id), 200, 3190)
    expect(beta.delete("All_Items", a_id), 200, 3190)
    assert acme.get_ok("All_Items", a_id)["Title"] == "acme-only"


@pytest.mark.parametrize("path", [
    "/creator/v2.1/data/acme/..%2Fbeta/shop/report/All_Items",
    "/creator/v2.1/data/acme%2F..%2Fbeta/shop/report/All_Items",
    "/creator/v2.1/data/acme/shop/report/..%2F..%2F..%2Fbeta%2Fshop%2Freport%2FAll_Items",
    "/creator/v2.1/data/./beta/shop/report/All_Items",
    "/creator/v2.1/data/acme/../beta/shop/report/All_Items",
    "/creator/v2.1/data/beta%00acme/shop/report/All_Items",
    "/creator/v2.1/data/BETA/shop/report/All_Items",
])
def test_path_tricks_never_reach_other_tenant(node, path):
    beta, rid = beta_record(node)
    api = node.api()
    r = api.request("GET", path)
    assert r.status_code in (400, 403, 404), describe(r)
    assert "beta-secret" not in r.text, f"leaked beta data: {describe(r)}"
    assert isinstance(body_of(r).get("code"), int), describe(r)
