"""Field-level encryption (docs/app-format.md "encrypt", docs/criteria.md
"Encrypted fields"), black-box against the real binary: values of fields
with `encrypt` read back over the API, == and != criteria work on them for
reads, updates and deletes, everything else is refused with a clear error,
an app that sorts a report by an encrypted field is rejected, unique checks
and lookup display values work, and neither the change log nor an import
leaves plaintext behind.

The tests share one private node (fixture fnode) (its own app, apps/field_enc_app.json).

    FORMVAULT_BIN=/path/to/formvault /usr/bin/python3 -m pytest -q tests/api/test_field_encryption.py
"""
import csv
import json
import uuid

import pytest

import fvtest
from fvtest import APPS, Api, describe, error_text, expect, expect_error

pytestmark = pytest.mark.local

APP = APPS / "field_enc_app.json"


@pytest.fixture(scope="module")
def fnode():
    s = fvtest.new_node(tenants=("acme",), app=APP)
    try:
        s.api = Api(s.base, "acme", "fenc", s.token("acme"))
        yield s
    finally:
        s.cleanup()


@pytest.fixture
def api(fnode):
    return fnode.api


def marker():
    return "MK" + uuid.uuid4().hex[:12].upper()


def person(m, **kw):
    """A Person whose every encrypted value carries marker m."""
    rec = {"Name": "in clear", "SSN": m + "-ssn", "Email": m.lower() + "@example.com",
           "Home": {"address_line_1": m + " street", "district_city": "Springfield"}}
    rec.update(kw)
    return rec


def test_add_get_report_round_trip(api):
    m = marker()
    [rid] = api.add_ok("Person", [person(m, Salary=98765)])
    rec = api.get_ok("All_People", rid)
    assert rec["SSN"] == m + "-ssn"
    assert rec["Salary"] == "98765"
    assert rec["Email"] == m.lower() + "@example.com"
    assert rec["Home"]["address_line_1"] == m + " street"
    assert rec["Name"] == "in clear"
    recs = api.find("All_People", f'SSN == "{m}-ssn"')
    assert [r["ID"] for r in recs] == [rid]
    assert recs[0]["Email"] == m.lower() + "@example.com"


def test_criteria_equal_and_not_equal(api):
    m = marker()
    ids = api.add_ok("Person", [person(m + "a", Salary=111), person(m + "b", Salary=111),
                                person(m + "c", Salary=222)])
    same = api.find("All_People", f'Salary == 111 && (SSN == "{m}a-ssn" || SSN == "{m}b-ssn")')
    assert sorted(r["ID"] for r in same) == sorted(ids[:2])
    others = api.find("All_People", f'Salary != 111 && SSN == "{m}c-ssn"')
    assert [r["ID"] for r in others] == [ids[2]]
    none = api.find("All_People", f'SSN == "{m}x-ssn"')
    assert none == []
    # null tests on an encrypted field
    [rid] = api.add_ok("Person", [{"Name": m}])
    empty = api.find("All_People", f'Name == "{m}" && SSN == null')
    assert [r["ID"] for r in empty] == [rid]


def test_update_by_criteria_on_encrypted_field(api):
    m = marker()
    [a, b] = api.add_ok("Person", [person(m + "a", Salary=1), person(m + "b", Salary=2)])
    r = api.update_where("All_People", f'SSN == "{m}a-ssn"', {"Salary": 7, "SSN": m + "a2-ssn"})
    body = expect(r, 200, 3000)
    assert len(body["result"]) == 1, describe(r)
    assert api.get_ok("All_People", a)["Salary"] == "7"
    assert api.get_ok("All_People", a)["SSN"] == m + "a2-ssn"
    assert api.get_ok("All_People", b)["Salary"] == "2"
    assert api.find("All_People", f'SSN == "{m}a-ssn"') == []


def test_delete_by_criteria_on_encrypted_field(api):
    m = marker()
    [a, b] = api.add_ok("Person", [person(m + "a"), person(m + "b")])
    r = api.delete_where("All_People", f'SSN == "{m}a-ssn"')
    expect(r, 200, 3000)
    expect(api.get("All_People", a), 200, 3190)
    assert api.get_ok("All_People", b)["SSN"] == m + "b-ssn"


@pytest.mark.parametrize("crit,op", [
    ("Salary > 5", ">"),
    ("Salary <= 5", "<="),
    ('SSN.contains("1")', ".contains"),
    ('SSN.startsWith("1")', ".startsWith"),
    ('Email.endsWith(".com")', ".endsWith"),
])
def test_refused_operators(api, crit, op):
    r = api.report("All_People", {"criteria": crit})
    b = expect_error(r, 400, 3330)
    msg = error_text(b)
    assert "is encrypted" in msg and "only == and !=" in msg and op in msg, describe(r)
    # the same criteria on update and delete
    r = api.update_where("All_People", crit, {"Salary": 1})
    expect_error(r, 400, 3330)
    r = api.delete_where("All_People", crit)
    expect_error(r, 400, 3330)


def test_refused_part_of_encrypted_address(api):
    r = api.report("All_People", {"criteria": 'Home.district_city == "Springfield"'})
    b = expect_error(r, 400, 3330)
    assert "'Home' is encrypted" in error_text(b), describe(r)


def test_unique_encrypted_field(api):
    m = marker()
    api.add_ok("Person", [person(m)])
    r = api.add("Person", [person(m)])
    b = expect(r, 200, 3002)
    res = b["result"]
    assert len(res) == 1 and res[0].get("code") == 3001, describe(r)
    assert "SSN" in error_text(res[0]), describe(r)
    assert m not in json.dumps(b), "an error must never quote the value"
    # after an update to a new value the old one is free again
    [rid] = api.add_ok("Person", [person(m + "x")])
    expect(api.update("All_People", rid, {"SSN": m + "y-ssn"}), 200, 3000)
    api.add_ok("Person", [person(m + "x")])


def test_lookup_shows_decrypted_display_value(api):
    m = marker()
    [pid] = api.add_ok("Person", [person(m)])
    [vid] = api.add_ok("Visit", [{"Who": pid, "Note": m}])
    rec = api.get_ok("Visits", vid)
    assert rec["Who"]["ID"] == pid
    assert rec["Who"]["zc_display_value"] == m + "-ssn"
    # criteria through the lookup into the encrypted field
    recs = api.find("Visits", f'Who.SSN == "{m}-ssn"')
    assert [r["ID"] for r in recs] == [vid]


def test_sort_by_encrypted_field_rejected(fnode, tmp_path):
    app = json.loads(APP.read_text())
    app["link_name"] = "fenc_sorted"
    app["forms"] = [f for f in app["forms"] if f["link_name"] == "Person"]
    app["reports"] = [{"link_name": "By_SSN", "form": "Person",
                       "sort": {"field": "SSN", "order": "asc"}}]
    p = tmp_path / "sorted.json"
    p.write_text(json.dumps(app))
    with pytest.raises(fvtest.CliError) as ei:
        fnode.import_app(p, "acme")
    text = str(ei.value)
    assert "cannot sort by field 'SSN'" in text and "encrypted" in text, text


def test_changing_encrypt_in_upgrade_rejected(fnode, tmp_path):
    app = json.loads(APP.read_text())
    for f in app["forms"][0]["fields"]:
        if f["link_name"] == "Salary":
            del f["encrypt"]
    p = tmp_path / "upgrade.json"
    p.write_text(json.dumps(app))
    with pytest.raises(fvtest.CliError) as ei:
        fnode.import_app(p, "acme")
    assert "'Salary'" in str(ei.value), str(ei.value)


def test_changelog_has_no_plaintext(fnode, api):
    m = marker()
    [rid] = api.add_ok("Person", [person(m, Salary=31415926)])
    expect(api.update("All_People", rid, {"SSN": m + "-new", "Email": m.lower() + "@new.org"}),
           200, 3000)
    entries = fnode.changelog("acme")
    mine = [e for e in entries if e.get("record_id") == rid]
    assert len(mine) == 2, mine
    text = json.dumps(entries)
    assert m not in text and m.lower() not in text and "31415926" not in text
    assert "in clear" in text  # fields without encrypt stay readable
    img = mine[-1]["row"]
    for col in ("c_SSN", "c_Salary", "c_Email", "c_Home"):
        assert isinstance(img[col], dict) and isinstance(img[col].get("enc"), str), img


def test_csv_import_encrypts(fnode, api, tmp_path):
    m = marker()
    p = tmp_path / "people.csv"
    with open(p, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(["Name", "SSN", "Salary", "Email"])
        for i in range(3):
            w.writerow([f"imp{i}", f"{m}{i}-ssn", str(100 + i), f"{m.lower()}{i}@ex.org"])
    fnode.cli("import", p, "--tenant", "acme", "--app", "fenc", "--form", "Person")
    recs = api.find("All_People", f'SSN == "{m}1-ssn"')
    assert len(recs) == 1 and recs[0]["Salary"] == "101" and recs[0]["Name"] == "imp1"
    assert m not in json.dumps(fnode.changelog("acme"))
