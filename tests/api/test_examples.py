"""The sample apps in examples/ import cleanly with all their data."""
import collections
import csv
import datetime
import subprocess
import sys

import pytest

from fvtest import REPO, Api, expect

EX = REPO / "examples"


def rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("args", [
    ["clinic/app.json", "Patient", "clinic/patients.csv"],
    ["clinic/app.json", "Visit", "clinic/visits.csv", "--lookup",
     f"Patient={EX / 'clinic/patients.csv'}"],
    ["birdstrikes/app.json", "Strike", "birdstrikes/birdstrikes.csv"],
], ids=["patients", "visits", "birdstrikes"])
def test_example_data_fits_app(args):
    full = [str(EX / a) if a.endswith((".json", ".csv")) and "=" not in a else a for a in args]
    p = subprocess.run([sys.executable, str(EX / "check_csv.py"), *full],
                       capture_output=True, text=True)
    assert p.returncode == 0 and ", 0 problems" in p.stdout, p.stdout[-2000:]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    import fvtest
    s = fvtest.new_node(tenants=("demo",), app=None, start=False)
    try:
        s.import_app(EX / "clinic" / "app.json", "demo")
        s.import_app(EX / "birdstrikes" / "app.json", "demo")
        results = {}
        for app, form, csvp in (("clinic", "Patient", "clinic/patients.csv"),
                                ("clinic", "Visit", "clinic/visits.csv"),
                                ("birdstrikes", "Strike", "birdstrikes/birdstrikes.csv")):
            try:
                results[form] = s.run("import", str(EX / csvp), "--tenant", "demo", "--app",
                                      app, "--form", form, timeout=300)
            except subprocess.TimeoutExpired as e:
                results[form] = e
        s.start()
        tok = s.token("demo")
        yield s, tok, results
    finally:
        s.cleanup()


pytestmark = pytest.mark.local


@pytest.mark.parametrize("form", ["Patient", "Visit", "Strike"])
def test_example_import_clean(loaded, form):
    _, _, results = loaded
    p = results[form]
    assert not isinstance(p, subprocess.TimeoutExpired), f"import {form} took over 300 s"
    assert p.returncode == 0, f"import {form} exited {p.returncode}: {p.stderr[-1500:]}"
    bad = [line for line in p.stderr.splitlines() if "row" in line.lower()]
    assert not bad, f"import {form} refused rows:\n" + "\n".join(bad[:20])


@pytest.mark.parametrize("app,report,n", [
    ("clinic", "All_Patients", 5000), ("clinic", "All_Visits", 20000),
    ("birdstrikes", "All_Strikes", 10000),
])
def test_example_counts(loaded, app, report, n):
    s, tok, _ = loaded
    recs, _ = Api(s.base, "demo", app, tok).scan(report, {"field_config": "custom",
                                                          "fields": "Added_Time"})
    assert len(recs) == n and len({r["ID"] for r in recs}) == n


def test_example_patient_values(loaded):
    s, tok, _ = loaded
    api = Api(s.base, "demo", "clinic", tok)
    src = {r["Patient_Number"]: r for r in rows(EX / "clinic" / "patients.csv")}
    for num in ("P000001", "P000002", "P000005", "P000006"):
        [rec] = api.find("All_Patients", f'Patient_Number == "{num}"', field_config="all")
        want = src[num]
        for k in ("First_Name", "Last_Name", "Email", "Phone", "Gender", "Street", "City",
                  "Postal_Code", "Country", "Insurance_ID", "Blood_Type", "Allergies",
                  "Emergency_Contact", "Notes"):
            assert rec.get(k, "") == want[k], f"{num}.{k}: {rec.get(k)!r} != {want[k]!r}"
        dob = datetime.date.fromisoformat(want["Date_of_Birth"]).strftime("%d-%b-%Y")
        assert rec["Date_of_Birth"] == dob
        assert rec["Consent_Signed"] is (want["Consent_Signed"] == "true")


def test_example_visit_values_and_lookup(loaded):
    s, tok, _ = loaded
    api = Api(s.base, "demo", "clinic", tok)
    src = rows(EX / "clinic" / "visits.csv")[:3]
    for want in src:
        [rec] = api.find("All_Visits", f'Visit_Number == "{want["Visit_Number"]}"',
                         field_config="all")
        assert rec["Patient_Number"]["zc_display_value"] == want["Patient_Number"], rec
        [pat] = api.find("All_Patients", f'Patient_Number == "{want["Patient_Number"]}"')
        assert rec["Patient_Number"]["ID"] == pat["ID"]
        for k in ("Visit_Date", "Visit_Time", "Department", "Diagnosis_Code", "Systolic",
                  "Temperature_C", "Weight_kg", "Fee", "Status", "Clinician_Notes"):
            assert rec.get(k, "") == want[k], f"{want['Visit_Number']}.{k}"
        assert rec["Paid"] is (want["Paid"] == "true")


def test_example_report_criteria_and_sort(loaded):
    s, tok, _ = loaded
    clinic = Api(s.base, "demo", "clinic", tok)
    visits = rows(EX / "clinic" / "visits.csv")
    want_open = sum(1 for v in visits if v["Status"] in ("Scheduled", "Checked-in"))
    got, _ = clinic.scan("Open_Visits", {"field_config": "custom", "fields": "Status"})
    assert len(got) == want_open
    assert collections.Counter(x["Status"] for x in got).keys() == {"Scheduled", "Checked-in"}
    b = expect(clinic.report("All_Visits", {"field_config": "custom", "fields": "Visit_Date",
                                            "max_records": "200"}), 200, 3000)
    dates = [datetime.datetime.strptime(x["Visit_Date"], "%d-%b-%Y") for x in b["data"]]
    latest = max(datetime.datetime.strptime(v["Visit_Date"], "%d-%b-%Y") for v in visits)
    assert dates == sorted(dates, reverse=True) and dates[0] == latest

    birds = Api(s.base, "demo", "birdstrikes", tok)
    strikes = rows(EX / "birdstrikes" / "birdstrikes.csv")
    want_dmg = sum(1 for r in strikes if r["Effect Amount of damage"] not in ("", "None"))
    got, _ = birds.scan("Damaging_Strikes")
    assert len(got) == want_dmg
    assert set(got[0]) == {"ID", "Flight_Date", "Airport_Name", "Aircraft_Make_Model",
                           "Effect_Amount_of_damage", "Wildlife_Species", "Cost_Total"}
    totals = [int(x["Cost_Total"]) for x in got]
    assert totals == sorted(totals, reverse=True)
    assert totals[0] == max(int(r["Cost Total $"]) for r in strikes)
