"""The command line: help, version, tenants, app import/export, CSV import,
change log."""
import csv
import json
import re

import pytest

from fvtest import APPS, Api, Server, expect, golden

pytestmark = pytest.mark.local

SUBCOMMANDS = [
    [], ["init"], ["serve"], ["version"], ["tenant"], ["tenant", "create"], ["tenant", "list"],
    ["app"], ["app", "import"], ["app", "export"], ["token"], ["token", "create"],
    ["import"], ["changelog"],
]


@pytest.fixture(scope="module")
def offline():
    """An initialised node that is never started (CLI-only checks)."""
    s = Server()
    s.init()
    yield s
    s.cleanup()


@pytest.mark.parametrize("sub", SUBCOMMANDS, ids=[" ".join(s) or "top" for s in SUBCOMMANDS])
def test_help(offline, sub):
    p = offline.run(*sub, "--help")
    assert p.returncode == 0, f"`formvault {' '.join(sub)} --help` exited {p.returncode}: " \
                              f"{p.stderr[:300]}"
    assert re.search(r"usage", p.stdout, re.I), f"no usage on stdout: {p.stdout[:300]!r}"
    if sub:
        assert sub[-1] in p.stdout, f"help of '{' '.join(sub)}' does not name it"


def test_unknown_subcommand_fails(offline):
    p = offline.run("no-such-command")
    assert p.returncode != 0
    assert p.stderr.strip(), "an error must say why on stderr"


def test_version(offline):
    p = offline.run("version")
    assert p.returncode == 0
    assert re.search(r"\b\d+\.\d+\.\d+\b", p.stdout), p.stdout


def test_tenant_list(server):
    out = server.cli("tenant", "list")
    names = set(re.findall(r"[A-Za-z][A-Za-z0-9_]*", out))
    assert {"acme", "beta"} <= names, out


def test_tenant_create_duplicate_fails(server):
    p = server.run("tenant", "create", "acme")
    assert p.returncode != 0 and "acme" in p.stderr, (p.returncode, p.stderr)


def test_token_create_unknown_scope_fails(server):
    p = server.run("token", "create", "--tenant", "acme", "--scopes", "ZohoCreator.nope.READ")
    assert p.returncode != 0 and "ZohoCreator.nope.READ" in p.stderr
    assert p.stdout.strip() == "", "no token may be printed on failure"


def test_token_for_unknown_tenant_fails(server):
    p = server.run("token", "create", "--tenant", "nosuchtenant", "--scopes",
                   "ZohoCreator.report.READ")
    assert p.returncode != 0 and p.stdout.strip() == ""


def test_token_created_while_serving_works(server, node):
    tok = server.token("acme", ["ZohoCreator.report.READ"])
    api = Api(server.base, "acme", "shop", tok)
    expect(api.report("All_Empty"), 200, 9220)
    assert tok not in node.tokens.values()


# ------------------------------------------------------------------ apps

def test_app_export_round_trip(server, make_server):
    out = server.cli("app", "export", "shop", "--tenant", "acme")
    exported = json.loads(out)
    src = json.loads((APPS / "test_app.json").read_text())
    assert exported["link_name"] == "shop" and exported["format"] == 1
    assert [f["link_name"] for f in exported["forms"]] == [f["link_name"] for f in src["forms"]]
    for fe, fs in zip(exported["forms"], src["forms"]):
        assert [(x["link_name"], x["type"]) for x in fe["fields"]] == \
            [(x["link_name"], x["type"]) for x in fs["fields"]]
        for xe, xs in zip(fe["fields"], fs["fields"]):
            for k in ("required", "unique", "max_length", "choices", "default",
                      "decimal_places", "lookup", "prefix", "start"):
                if k in xs:
                    got = xe.get(k)
                    want = xs[k]
                    if k == "lookup":
                        got = {kk: vv for kk, vv in (got or {}).items() if kk != "multi"}
                        want = {kk: vv for kk, vv in want.items() if kk != "multi"}
                    assert got == want, f"{fs['link_name']}.{xs['link_name']}.{k}"
    assert [r["link_name"] for r in exported["reports"]] == [r["link_name"] for r in src["reports"]]
    # canonical: exporting an import of the export gives the same text
    other = make_server(tenants=("t2",), app=None, start=False)
    p = other.tmp / "exported.json"
    p.write_text(out)
    other.import_app(p, "t2")
    assert other.cli("app", "export", "shop", "--tenant", "t2") == out


def test_app_export_unknown_app_fails(server):
    p = server.run("app", "export", "nosuchapp", "--tenant", "acme")
    assert p.returncode != 0 and "nosuchapp" in p.stderr


BAD_APPS = [
    ("unknown_key", lambda a: a["forms"][0]["fields"][0].update({"requird": True}),
     ["forms[0].fields[0]", "requird"]),
    ("unknown_type", lambda a: a["forms"][1]["fields"][3].update({"type": "colour"}),
     ["forms[1].fields[3].type", "colour"]),
    ("choices_missing", lambda a: a["forms"][1]["fields"][12].pop("choices"),
     ["forms[1].fields[12]", "choices"]),
    ("bad_link_name", lambda a: a["forms"][0]["fields"][1].update({"link_name": "1abc"}),
     ["forms[0].fields[1]", "link_name"]),
    ("reserved_name", lambda a: a["forms"][0]["fields"][1].update({"link_name": "Added_Time"}),
     ["forms[0].fields[1]", "Added_Time"]),
    ("duplicate_field", lambda a: a["forms"][0]["fields"][1].update(
        {"link_name": "Customer_Code"}), ["forms[0].fields[1]", "Customer_Code"]),
    ("lookup_bad_form", lambda a: a["forms"][1]["fields"][22]["lookup"].update(
        {"form": "Nowhere"}), ["forms[1].fields[22]", "Nowhere"]),
    ("report_bad_form", lambda a: a["reports"][0].update({"form": "Nowhere"}),
     ["reports[0]", "Nowhere"]),
    ("default_invalid", lambda a: a["forms"][1]["fields"][12].update({"default": "Food"}),
     ["forms[1].fields[12]", "default"]),
    ("decimal_places_10", lambda a: a["forms"][1]["fields"][6].update({"decimal_places": 10}),
     ["forms[1].fields[6]", "decimal_places"]),
    ("bad_format", lambda a: a.update({"format": 2}), ["format"]),
    ("bad_criteria", lambda a: a["reports"][4].update({"criteria": "Price <<< 1"}),
     ["reports[4]", "criteria"]),
]


@pytest.mark.parametrize("mutate,needles", [b[1:] for b in BAD_APPS], ids=[b[0] for b in BAD_APPS])
def test_app_import_errors_name_the_place(server, tmp_path, mutate, needles):
    app = json.loads((APPS / "test_app.json").read_text())
    app["link_name"] = "badshop"
    mutate(app)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(app))
    r = server.run("app", "import", str(p), "--tenant", "acme")
    assert r.returncode != 0, f"invalid app accepted: {needles}"
    for n in needles:
        assert n in r.stderr, f"error must contain {n!r}: {r.stderr[:400]!r}"
    e = server.run("app", "export", "badshop", "--tenant", "acme")
    assert e.returncode != 0, "a refused app was installed anyway"


# ------------------------------------------------------------------ CSV import

def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(header)
        w.writerows(rows)


@pytest.fixture(scope="module")
def importer():
    """A private node for CSV imports: `formvault import` writes the tenant
    DB directly, so it must not disturb the shared server's tests."""
    import fvtest
    s = fvtest.new_node()
    yield s, Api(s.base, "acme", "shop", s.token("acme"))
    s.cleanup()


def test_csv_import_reports_bad_rows_and_keeps_good(importer, tmp_path, uniq):
    server, api = importer
    code = uniq[-6:]
    rows = [
        [f"A{code}", "Alpha, Inc."],          # 1 ok (quoted comma)
        ["", "No code"],                       # 2 missing required
        [f"B{code}", 'Say "hi", twice'],       # 3 ok (doubled quotes)
        [f"A{code}", "Duplicate"],             # 4 unique violation
        [f"C{code}" + "x" * 20, "Too long"],   # 5 over max_length 12
        [f"D{code}", "Delta"],                 # 6 ok
    ]
    p = tmp_path / "customers.csv"
    write_csv(p, ["Customer_Code", "Company"], rows)
    r = server.run("import", str(p), "--tenant", "acme", "--app", "shop", "--form", "Customer")
    # exit 3: the file was processed but rows were rejected (import --help)
    assert r.returncode == 3, f"import exited {r.returncode}: {r.stderr[:500]}"
    err_rows = {int(n) for n in re.findall(r"\brow\D{0,3}(\d+)", r.stderr, re.I)}
    # data rows 2, 4, 5, counted with the header as row 1 (import --help)
    assert err_rows == {3, 5, 6}, \
        f"row errors reported for {err_rows}, expected data rows 2, 4, 5:\n{r.stderr[:800]}"
    summary = (r.stdout + r.stderr).lower()
    assert re.search(r"\b3\b", summary) and re.search(r"\b6\b", summary), \
        f"summary must give rows read (6) and imported (3): {summary[-300:]!r}"
    got = api.find("All_Customers", f'Customer_Code.endsWith("{code}")')
    assert sorted((x["Customer_Code"], x["Company"]) for x in got) == [
        (f"A{code}", "Alpha, Inc."), (f"B{code}", 'Say "hi", twice'), (f"D{code}", "Delta")]


def test_csv_import_by_display_name(importer, tmp_path, uniq):
    server, api = importer
    code = uniq[-8:]
    p = tmp_path / "c.csv"
    write_csv(p, ["Customer Code", "Company"], [[f"E{code}", "Echo"]])
    server.cli("import", str(p), "--tenant", "acme", "--app", "shop", "--form", "Customer")
    got = api.find("All_Customers", f'Customer_Code == "E{code}"')
    assert [x["Company"] for x in got] == ["Echo"]


def test_csv_import_unknown_column_writes_nothing(importer, tmp_path, uniq):
    server, api = importer
    code = uniq[-8:]
    p = tmp_path / "c.csv"
    write_csv(p, ["Customer_Code", "Colour"], [[f"F{code}", "red"]])
    r = server.run("import", str(p), "--tenant", "acme", "--app", "shop", "--form", "Customer")
    assert r.returncode != 0 and "Colour" in r.stderr, (r.returncode, r.stderr[:300])
    expect(api.report("All_Customers", {"criteria": f'Customer_Code == "F{code}"'}), 200, 9280)


def test_api_adds_after_csv_import_while_serving(make_server, tmp_path, uniq):
    """`formvault import` while `serve` runs on the same data dir: the
    server's next adds must still succeed with fresh IDs (no ID collision
    reported as a unique violation)."""
    server = make_server()
    api = Api(server.base, "acme", "shop", server.token("acme"))
    code = uniq[-6:]
    api.add_ok("Customer", [{"Customer_Code": f"G{code}"}])
    p = tmp_path / "c.csv"
    write_csv(p, ["Customer_Code", "Company"], [[f"H{code}", "x"], [f"I{code}", "y"]])
    server.cli("import", str(p), "--tenant", "acme", "--app", "shop", "--form", "Customer")
    ids = []
    for i in range(3):
        r = api.add("Customer", [{"Customer_Code": f"J{i}{code}"}])
        ids.append(golden("add_one", r)["result"][0]["data"]["ID"])
    got = api.find("All_Customers", f'Customer_Code.endsWith("{code}")')
    assert len(got) == 6 and len({x["ID"] for x in got}) == 6


def test_csv_import_unknown_form_fails(server, tmp_path):
    p = tmp_path / "c.csv"
    write_csv(p, ["Label"], [["x"]])
    r = server.run("import", str(p), "--tenant", "acme", "--app", "shop", "--form", "Nowhere")
    assert r.returncode != 0 and "Nowhere" in r.stderr


# ------------------------------------------------------------------ change log

def test_changelog_records_mutations(make_server):
    s = make_server()
    api = Api(s.base, "acme", "shop", s.token("acme"))
    start = s.changelog("acme")
    last = start[-1]["seq"] if start else 0
    a, b = api.add_ok("Scratch", [{"Label": "a"}, {"Label": "b"}])
    expect(api.update("All_Scratch", a, {"Label": "a2"}), 200, 3000)
    expect(api.delete("All_Scratch", b), 200, 3000)
    # failed writes leave no entry
    expect(api.add("Bulk", [{"N": "x", "Batch": "b"}]), 200, 3002)
    expect(api.update("All_Scratch", "1", {"Label": "x"}), 200, 3190)
    expect(api.add("Bulk", [{"N": i, "Batch": "b"} for i in range(201)]), 200, 3950)
    log = s.changelog("acme", after=last)
    assert [e["seq"] for e in log] == list(range(last + 1, last + 5)), log
    for e in log:
        assert {"seq", "time", "actor", "op", "form", "record_id", "row"} <= set(e), e
    assert [(e["op"], e["form"], str(e["record_id"])) for e in log] == [
        ("insert", "Scratch", a), ("insert", "Scratch", b), ("update", "Scratch", a),
        ("delete", "Scratch", b)], log
    assert s.changelog("acme", after=last, limit=2) == log[:2]
    assert s.changelog("acme", after=last + 3) == log[3:]
    assert s.changelog("acme", after=last + 4) == []

    # by criteria: one entry per record touched; refused calls none
    last += 4
    ids = api.add_many("Bulk", [{"N": i, "Batch": "cl"} for i in range(203)])
    expect(api.update_where("All_Bulk", 'Batch == "cl"', {"State": "x"}), 200, 3960)
    expect(api.delete_where("All_Bulk", 'Batch == "cl"'), 200, 3960)
    expect(api.update_where("All_Bulk", 'Batch == "none"', {"State": "x"}), 404, 3100)
    expect(api.update_where("All_Bulk", 'Batch == "cl" && N < 2', {"State": "y"}), 200, 3000)
    expect(api.delete_where("All_Bulk", 'Batch == "cl" && N == 5'), 200, 3000)
    log = s.changelog("acme", after=last)
    assert [e["seq"] for e in log] == list(range(last + 1, last + 207)), \
        f"expected 203 inserts + 2 updates + 1 delete, got {len(log)} entries"
    assert [(e["op"], str(e["record_id"])) for e in log[203:]] == [
        ("update", ids[0]), ("update", ids[1]), ("delete", ids[5])]


@pytest.mark.parametrize("name", ["meta", "data", "Bulk", "publish"])
def test_tenant_create_reserved_name_fails(server, name):
    """Path words of the API families cannot be owners (/api/v2.1/meta/... is the meta API)."""
    p = server.run("tenant", "create", name)
    assert p.returncode != 0 and "reserved" in p.stderr, (p.returncode, p.stderr)


def test_csv_import_progress_line_on_a_terminal(importer, tmp_path, uniq):
    """On a terminal, import shows a progress line with rows/s and percent;
    through a pipe it does not (the line is for people, not logs)."""
    import shlex
    import shutil
    import subprocess
    import fvtest
    if not shutil.which("script"):
        pytest.skip("script(1) is needed to give the import a terminal")
    server, api = importer
    code = uniq[-6:]
    rows = [[f"T{code}{i:05d}"[:12], f"Company {i}"] for i in range(30000)]
    p = tmp_path / "many.csv"
    write_csv(p, ["Customer_Code", "Company"], rows)
    cmd = " ".join(shlex.quote(str(x)) for x in
                   [fvtest.BIN, "import", p, "--tenant", "acme", "--app", "shop", "--form",
                    "Customer"])
    tty = subprocess.run(["script", "-qec", cmd, "/dev/null"], env=server.env(),
                         capture_output=True, text=True, timeout=120)
    assert tty.returncode in (0, 3), tty.stdout[-500:]
    assert re.search(r"\d+ rows\s+\d+ rows/s\s+\d+%", tty.stdout), tty.stdout[-500:]
    piped = server.run("import", str(p), "--tenant", "acme", "--app", "shop", "--form", "Customer")
    assert "rows/s" not in piped.stderr


def test_app_import_while_serving_is_picked_up(node, server, tmp_path, uniq):
    """`formvault app import` from another process reaches the running server
    within about a second: a new app, then an upgrade with a new field."""
    import time
    link = "late" + uniq[-6:]
    app = {"format": 1, "link_name": link, "forms": [
        {"link_name": "Note", "fields": [{"link_name": "Text", "type": "single_line"}]}],
        "reports": [{"link_name": "All_Notes", "form": "Note"}]}
    p = tmp_path / "late.json"
    p.write_text(json.dumps(app))
    r = server.run("app", "import", str(p), "--tenant", "acme")
    assert r.returncode == 0, r.stderr
    api = node.api(app=link)

    def wait_for(fn, what):
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            got = fn()
            if got:
                return got
            time.sleep(0.2)
        raise AssertionError(f"the running server did not pick up {what}")

    wait_for(lambda: api.add("Note", [{"Text": "a"}]).json().get("code") == 3000, "the new app")
    app["forms"][0]["fields"].append({"link_name": "Extra", "type": "number"})
    p.write_text(json.dumps(app))
    r = server.run("app", "import", str(p), "--tenant", "acme")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: api.add("Note", [{"Text": "b", "Extra": 7}]).json().get("code") == 3000,
             "the new field")
    rows = api.report("All_Notes").json()["data"]
    assert sorted((x["Text"], x.get("Extra", "")) for x in rows) == [("a", ""), ("b", "7")], rows
