#!/usr/bin/env python3
"""Check that every value of a CSV file fits a form of an app definition.

    python3 examples/check_csv.py examples/clinic/app.json Patient examples/clinic/patients.csv
    python3 examples/check_csv.py examples/clinic/app.json Visit examples/clinic/visits.csv \
        --lookup Patient=examples/clinic/patients.csv

Applies the field rules of docs/app-format.md (required, unique, max_length,
choices, number digits, decimal places, e-mail / phone / date / time syntax,
lookup targets) to every cell, the way `formvault import` must, so a sample
app and its data cannot drift apart. Prints one line per bad cell and exits 1
if there is any. Standard library only.
"""
import argparse
import csv
import datetime
import json
import re
import sys

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^[0-9 +\-.()x]+$")
NUMBER = re.compile(r"^-?[0-9]+$")
DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$")
# app date_format -> strptime pattern
DATE_FORMATS = {
    "dd-MMM-yyyy": "%d-%b-%Y",
    "dd-MM-yyyy": "%d-%m-%Y",
    "dd.MM.yyyy": "%d.%m.%Y",
    "MM-dd-yyyy": "%m-%d-%Y",
    "yyyy-MM-dd": "%Y-%m-%d",
    "MMM dd,yyyy": "%b %d,%Y",
}
TEXT_DEFAULT_MAX = {"single_line": 255, "email": 255, "phone": 255, "url": 255,
                    "multi_line": 65535, "rich_text": 65535}


def parse_date(value, app_format):
    for fmt in (DATE_FORMATS[app_format], "%Y-%m-%d"):
        try:
            datetime.datetime.strptime(value, fmt)
            return True
        except ValueError:
            pass
    return False


def check_cell(field, value, app):
    """Return an error message for one non-empty cell, or None."""
    t = field["type"]
    if t in TEXT_DEFAULT_MAX:
        limit = field.get("max_length", TEXT_DEFAULT_MAX[t])
        if len(value) > limit:
            return f"{len(value)} characters, max_length is {limit}"
    if t == "email" and not EMAIL.match(value):
        return "not an e-mail address"
    if t == "phone" and not PHONE.match(value):
        return "phone holds characters other than digits, spaces and + - . ( ) x"
    if t == "number":
        if not NUMBER.match(value):
            return "not an integer"
        if len(value.lstrip("-")) > 15:
            return "more than 15 digits (8011)"
    if t in ("decimal", "percent", "currency"):
        if not DECIMAL.match(value):
            return "not a decimal number"
        places = len(value.split(".")[1]) if "." in value else 0
        if places > field.get("decimal_places", 2):
            return f"{places} decimals, decimal_places is {field.get('decimal_places', 2)} (8012)"
    if t in ("dropdown", "radio") and value not in field["choices"]:
        return f"'{value}' is not a choice"
    if t == "decision" and value.lower() not in ("true", "false"):
        return "not true/false"
    if t == "date" and not parse_date(value, app.get("date_format", "dd-MMM-yyyy")):
        return "not a date in the app format or YYYY-MM-DD"
    if t == "time" and not TIME.match(value):
        return "not HH:mm[:ss]"
    if t == "autonumber":
        return "autonumber is not settable"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("app")
    ap.add_argument("form")
    ap.add_argument("csv")
    ap.add_argument("--lookup", action="append", default=[],
                    help="FORM=CSV: target rows for lookup fields into FORM")
    args = ap.parse_args()

    app = json.load(open(args.app, encoding="utf-8"))
    forms = {f["link_name"]: f for f in app["forms"]}
    form = forms[args.form]
    targets = dict(x.split("=", 1) for x in args.lookup)

    with open(args.csv, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)

    by_name = {}
    for fld in form["fields"]:
        by_name[fld["link_name"]] = fld
        by_name.setdefault(fld.get("display_name", fld["link_name"]), fld)
    errors = 0
    cols = []
    for h in header:
        if h not in by_name:
            print(f"header '{h}': no field with that link or display name")
            errors += 1
        cols.append(by_name.get(h))
    missing = [f["link_name"] for f in form["fields"]
               if f.get("required") and f not in cols]
    for m in missing:
        print(f"required field '{m}' has no column")
        errors += 1

    lookup_values = {}
    for fld in form["fields"]:
        if fld["type"] == "lookup":
            tform = fld["lookup"]["form"]
            dfield = fld["lookup"]["display_field"]
            if tform not in targets:
                print(f"field '{fld['link_name']}': pass --lookup {tform}=<csv> to check it")
                errors += 1
                continue
            with open(targets[tform], newline="", encoding="utf-8") as tf:
                lookup_values[fld["link_name"]] = {r[dfield] for r in csv.DictReader(tf)}

    seen = {}
    for n, row in enumerate(rows, start=1):
        if len(row) != len(header):
            print(f"row {n}: {len(row)} cells, header has {len(header)}")
            errors += 1
            continue
        for fld, value in zip(cols, row):
            if fld is None:
                continue
            name = fld["link_name"]
            if value == "":
                if fld.get("required"):
                    print(f"row {n}: '{name}' is required but empty")
                    errors += 1
                continue
            if fld["type"] == "lookup":
                if name in lookup_values and value not in lookup_values[name]:
                    print(f"row {n}: '{name}' value '{value}' matches no target record")
                    errors += 1
                msg = None
            else:
                msg = check_cell(fld, value, app)
            if msg:
                print(f"row {n}: '{name}': {msg}")
                errors += 1
            if fld.get("unique"):
                if value in seen.setdefault(name, {}):
                    print(f"row {n}: '{name}' value '{value}' repeats row {seen[name][value]}")
                    errors += 1
                seen[name][value] = n
    print(f"{args.csv}: {len(rows)} rows, {errors} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
