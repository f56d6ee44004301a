"""Keys and encryption at rest (docs/keys.md), black-box against the real
binary: nothing readable in the data directory, KEK faults, tampering,
tenant key rotation, BYOK (imported keys and PKCS#11), crypto-shredding,
KEK rotation.

Every test runs its own private node(s) (fvtest.new_node / Server) so that
stopping, corrupting and shredding never touch the shared server.

    FORMVAULT_BIN=/path/to/formvault /usr/bin/python3 -m pytest -q tests/api/test_keys.py
"""
import csv
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

import fvtest
from fvtest import APPS, BIN, Api, Server, body_of, describe, expect

pytestmark = pytest.mark.local

ENC_APP = APPS / "enc_app.json"
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
SQLITE_MAGIC = b"SQLite format 3\x00"


# ------------------------------------------------------------------ helpers

@pytest.fixture
def nodes():
    """Private nodes, cleaned up after the test. Returns a factory:
    nodes(tenants=..., app=..., extra_env=..., start=...)."""
    made = []

    def make(**kw):
        s = fvtest.new_node(**kw)
        made.append(s)
        return s
    make.made = made
    yield make
    for s in made:
        s.cleanup()


def enc_row(i, tag=""):
    """Deterministic values of Vault/Secret record i (enc_app.json)."""
    return {"Code": f"k{i}{tag}", "Plain": f"plain {i} {tag}.",
            "Hidden": f"hidden {i} {tag} " + "h" * 40,
            "Mail": f"user{i}@example.com", "N": str(i)}


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(header)
        w.writerows(rows)


def import_enc_rows(s, tenant, n, tag=""):
    p = s.tmp / f"rows-{uuid.uuid4().hex[:6]}.csv"
    cols = ["Code", "Plain", "Hidden", "Mail", "N"]
    write_csv(p, cols, ([enc_row(i, tag)[c] for c in cols] for i in range(n)))
    s.cli("import", p, "--tenant", tenant, "--app", "vault", "--form", "Secret", timeout=300)


def check_enc_rows(api, n, tag="", extra=()):
    """Every one of the n imported rows (plus `extra` rows) is there, unchanged."""
    recs, _ = api.scan("All_Secrets")
    by_code = {r["Code"]: r for r in recs}
    want = {enc_row(i, tag)["Code"]: enc_row(i, tag) for i in range(n)}
    for x in extra:
        want[x["Code"]] = x
    missing = sorted(set(want) - set(by_code))
    assert not missing, f"{len(missing)} of {len(want)} records missing, e.g. {missing[:5]}"
    bad = [(c, {k: by_code[c].get(k) for k in w}, w) for c, w in want.items()
           if any(by_code[c].get(k) != v for k, v in w.items())]
    assert not bad, f"{len(bad)} records changed, e.g. (code, got, want) {bad[:2]}"
    return recs


def status(s, env=None):
    """`formvault keys status` parsed: (header text, {tenant: row})."""
    p = run_env(s, env, "keys", "status")
    assert p.returncode == 0, f"keys status exited {p.returncode}: {p.stderr}"
    rows = {}
    for line in p.stdout.splitlines():
        m = re.match(r"^(\d+)\s+(\S+)\s+(\S+)\s+(node KEK|\S+(?: REVOKED)?)\s+(none|v\S+)\s*(.*)$",
                     line)
        if not m:
            continue
        versions = {}
        for v in m.group(5).split(","):
            vm = re.fullmatch(r"v(\d+)(\(destroyed\))?", v)
            if vm:
                versions[int(vm.group(1))] = "destroyed" if vm.group(2) else "active"
        rows[m.group(2)] = {"id": m.group(1), "state": m.group(3), "kek": m.group(4),
                            "versions": versions, "rotation": m.group(6).strip(),
                            "line": line}
    return p.stdout, rows


def run_env(s, env, *args, timeout=120):
    """Run `formvault <args>` with the server's environment plus `env`."""
    e = s.env()
    e.update(env or {})
    return subprocess.run([str(BIN), *map(str, args)], env=e, capture_output=True, text=True,
                          timeout=timeout)


def serve_refused(s, env=None, timeout=15):
    """`formvault serve` must refuse to start: returns its stderr+stdout."""
    e = s.env()
    e.update(env or {})
    try:
        p = subprocess.run([str(BIN), "serve"], env=e, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"`formvault serve` started (still running after {timeout}s) "
                             f"although it must refuse to (env {env})")
    assert p.returncode != 0, f"`formvault serve` exited 0 although it must refuse to: {p.stderr}"
    return p.stderr + p.stdout


def wait_for(pred, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = pred()
        if ok:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout}s; last: {last}")


def data_files(data_dir):
    return sorted(p for p in Path(data_dir).rglob("*") if p.is_file())


def marker_hits(data_dir, markers):
    """(file, marker) for every marker found in any file under data_dir, raw
    bytes, also as UTF-16 (in case a layer stores it that way)."""
    hits = []
    for p in data_files(data_dir):
        try:
            raw = p.read_bytes()
        except FileNotFoundError:   # a -journal that vanished meanwhile
            continue
        for m in markers:
            for enc in (m.encode(), m.encode("utf-16-le")):
                if enc in raw:
                    hits.append((str(p.relative_to(data_dir)), m))
    return hits


def report_fails(api, report):
    """GET the report; it must fail (no data). Returns the response."""
    r = api.report(report, {"max_records": "1000"})
    assert r.status_code != 200, f"expected an error, got data:\n  {describe(r)}"
    return r


def gets_503_key_unavailable(api, report):
    def check():
        try:
            r = api.report(report)
        except requests.RequestException as e:
            return False, repr(e)
        try:
            b = r.json()
        except ValueError:
            b = {}
        ok = (r.status_code == 503 and b.get("code") == 2930
              and "key unavailable" in str(b.get("message", "")))
        return ok, describe(r)
    return check


def data_ok(api, report):
    def check():
        r = api.report(report)
        return r.status_code == 200 and body_of(r).get("code") == 3000, describe(r)
    return check


def page_size(path):
    with open(path, "rb") as f:
        f.seek(16)
        b = f.read(2)
    n = int.from_bytes(b, "big")
    return 65536 if n == 1 else n


def softhsm(tmp, labels=("T",)):
    """A private SoftHSM2 token directory with tokens `labels` (SO PIN 1234,
    user PIN 5678); returns (env with SOFTHSM2_CONF, pin file path)."""
    if not Path(SOFTHSM_MODULE).exists() or not shutil.which("softhsm2-util"):
        pytest.fail(f"SoftHSM2 is required ({SOFTHSM_MODULE}, softhsm2-util)")
    d = Path(tmp) / "hsm"
    (d / "tokens").mkdir(parents=True)
    conf = d / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {d / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    env = {"SOFTHSM2_CONF": str(conf)}
    for label in labels:
        hsm_util(env, "--init-token", "--free", "--label", label, "--so-pin", "1234",
                 "--pin", "5678")
    pin = d / "user.pin"
    pin.write_text("5678")
    pin.chmod(0o400)
    return env, pin


def hsm_util(env, *args):
    e = dict(os.environ)
    e.update(env)
    p = subprocess.run(["softhsm2-util", *args], env=e, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, f"softhsm2-util {' '.join(args)}: {p.stdout} {p.stderr}"
    return p.stdout


def new_enc_node(nodes, tenants=("acme", "beta"), extra_env=None, start=True):
    s = nodes(tenants=tenants, app=ENC_APP, extra_env=extra_env, start=False)
    for t in tenants:
        s.import_app(APPS / "test_app.json", t)
    if start:
        s.start()
    return s


# ------------------------------------------------------ 1. nothing in clear

def test_no_marker_in_any_file_while_serving_and_after_stop(nodes):
    tag = uuid.uuid4().hex[:8]
    t1, t2 = f"zqalpha{tag}", f"zqbravo{tag}"
    label = f"zqlabel-{tag}-ops"
    s = new_enc_node(nodes, tenants=(t1, t2), start=False)
    tok1 = s.cli("token", "create", "--tenant", t1, "--scopes", "all", "--label", label).strip()
    tok2 = s.token(t2)
    s.start()
    shop = Api(s.base, t1, "shop", tok1)
    vault = Api(s.base, t1, "vault", tok1)
    shop2 = Api(s.base, t2, "shop", tok2)

    markers = []

    def mk(kind):
        m = f"ZQMK{kind}{tag}{len(markers):03d}X"
        markers.append(m)
        return m

    # plain text fields, several forms and tenants
    recs = [{"Title": f"t{i}", "Description": f"line one {mk('desc')} end",
             "Marker": mk("mark"), "Contact": f"{mk('mail').lower()}@example.com"}
            for i in range(30)]
    ids = shop.add_ok("Item", recs)
    # a long text that overflows a page several times, marker at start, middle, end
    long_m = mk("long")
    long_text = long_m + ("lorem ipsum " * 2000) + long_m + ("dolor sit " * 2000) + long_m
    long_id = shop.add_ok("Item", [{"Title": "long", "Description": long_text,
                                    "Body": f"<p>{mk('rich')}</p>" + "<b>x</b>" * 4000}])[0]
    # updates (the old value goes to the change log, the new one into the table)
    for rid in ids[:10]:
        expect(shop.update("All_Items", rid, {"Description": f"updated {mk('upd')}"}), 200, 3000)
    # deletes
    for rid in ids[20:25]:
        expect(shop.delete("All_Items", rid), 200, 3000)
    # encrypted fields and the other tenant
    vault.add_ok("Secret", [{"Code": f"c{i}", "Plain": mk("vplain"), "Hidden": mk("vhid"),
                             "Mail": f"{mk('vmail').lower()}@example.com"} for i in range(10)])
    shop2.add_ok("Item", [{"Title": "b", "Description": mk("beta")} for _ in range(5)])
    # CSV import (the CLI writes tenant.db while the server runs)
    p = s.tmp / "m.csv"
    write_csv(p, ["Customer_Code", "Company"],
              [[f"cc{i}", mk("csv")] for i in range(20)])
    s.cli("import", p, "--tenant", t1, "--app", "shop", "--form", "Customer")
    # everything is there and readable through the API
    assert shop.get_ok("All_Items", long_id)["Description"] == long_text, "long text not read back"
    got = {r["Company"] for r in shop.scan("All_Customers")[0]}
    assert len(got) == 20, f"CSV import: {len(got)} customers"

    # the scanner itself works: it finds the CSV markers in the CSV file
    csv_markers = [m for m in markers if m.startswith("ZQMKcsv")]
    assert len({m for _, m in marker_hits(p.parent, csv_markers) if _ == p.name}) == 20, \
        "marker scan self-check failed"
    files = [str(f.relative_to(s.data_dir)) for f in data_files(s.data_dir)]
    wal_bytes = sum(f.stat().st_size for f in data_files(s.data_dir) if f.name.endswith("-wal"))
    print(f"while serving: {wal_bytes} bytes in WAL files; files: {files}")
    hits = marker_hits(s.data_dir, markers)
    assert not hits, (f"{len(hits)} marker(s) in clear while serving, e.g. {hits[:5]}; "
                      f"files: {files}")
    cat_names = [t1, t2, label, tok1, tok2]
    hits = [h for h in marker_hits(s.data_dir, cat_names) if h[0].startswith("catalog")]
    assert not hits, f"tenant names / token labels / tokens in clear in the catalog: {hits}"

    assert s.stop() == 0
    files = [str(f.relative_to(s.data_dir)) for f in data_files(s.data_dir)]
    hits = marker_hits(s.data_dir, markers)
    assert not hits, f"{len(hits)} marker(s) in clear after stop, e.g. {hits[:5]}; files: {files}"
    hits = [h for h in marker_hits(s.data_dir, cat_names) if h[0].startswith("catalog")]
    assert not hits, f"tenant names / token labels / tokens in clear in the catalog: {hits}"

    dbs = [f for f in data_files(s.data_dir) if f.name.endswith(".db")]
    assert any(f.name == "catalog.db" for f in dbs) and \
        sum(f.name == "tenant.db" for f in dbs) == 2, f"unexpected layout: {files}"
    for f in dbs:
        with open(f, "rb") as fh:
            head = fh.read(16)
        assert head != SQLITE_MAGIC, f"{f}: starts with the clear SQLite magic"
        assert SQLITE_MAGIC[:15] not in f.read_bytes(), f"{f}: holds 'SQLite format 3' in clear"

    # and the data is still all there after a restart
    s.start()
    assert shop.get_ok("All_Items", long_id)["Description"] == long_text


# ------------------------------------------------------------ 2. KEK faults

def _kek(dirpath, name, size=32, mode=0o400):
    p = Path(dirpath) / name
    p.write_bytes(os.urandom(size))
    p.chmod(mode)
    return p


@pytest.mark.parametrize("fault", ["missing", "inside_data_dir", "symlink_into_data_dir",
                                   "mode_0644", "size_31", "wrong_kek"])
def test_kek_file_faults_refuse_to_start(nodes, fault):
    s = nodes(tenants=("acme",), start=False)
    kd = s.kek_dir
    if fault == "missing":
        path, needles = kd / "nope.key", ["not found", "nope.key"]
    elif fault == "inside_data_dir":
        path = _kek(s.data_dir, "kek.key")
        needles = ["inside the data directory", str(path)]
    elif fault == "symlink_into_data_dir":
        target = _kek(s.data_dir, "hidden.key")
        path = kd / "link.key"
        path.symlink_to(target)
        needles = ["inside the data directory"]
    elif fault == "mode_0644":
        path = kd / "k644.key"
        shutil.copy(s.kek_file, path)
        path.chmod(0o644)
        needles = ["group or others", "0644"]
    elif fault == "size_31":
        path = _kek(kd, "k31.key", size=31)
        needles = ["31 bytes", "32"]
    else:
        path = _kek(kd, "other.key")
        needles = ["wrong KEK"]
    env = {"FORMVAULT_KEK_FILE": str(path)}
    out = serve_refused(s, env)
    for n in needles:
        assert n in out, f"{fault}: serve's error must contain {n!r}: {out[-600:]!r}"
    # the CLI refuses too, with the same reason
    p = run_env(s, env, "tenant", "list")
    assert p.returncode != 0 and needles[0] in p.stderr, \
        f"{fault}: `tenant list` exited {p.returncode}: {p.stderr[-400:]!r}"
    if fault == "wrong_kek":
        assert "file:" in out and out.count("file:") >= 2, \
            f"wrong KEK: the message must name both KEK IDs: {out[-400:]!r}"
    # nothing was damaged: the right KEK still works
    s.start()


def test_node_key_corrupted_is_a_clear_error(nodes):
    s = nodes(tenants=("acme",), start=False)
    nk = s.data_dir / "node.key"
    text = nk.read_text()
    m = re.search(r'"wrapped"\s*:\s*"([0-9a-f]+)"', text)
    assert m, f"node.key has no hex 'wrapped' member: {text!r}"
    i = m.start(1) + len(m.group(1)) // 2
    flipped = text[:i] + ("0" if text[i] != "0" else "1") + text[i + 1:]
    os.chmod(nk, 0o600)
    nk.write_text(flipped)
    out = serve_refused(s)
    assert "node key" in out and "does not unwrap" in out and "corrupted" in out, \
        f"corrupted node.key: expected 'node key ... does not unwrap ... corrupted': {out[-600:]!r}"
    p = s.run("tenant", "list")
    assert p.returncode != 0 and "does not unwrap" in p.stderr, p.stderr[-400:]


def test_node_key_deleted_is_a_clear_error(nodes):
    s = nodes(tenants=("acme",), start=False)
    (s.data_dir / "node.key").unlink()
    out = serve_refused(s)
    assert "node.key" in out or "node key" in out, \
        f"serve without node.key (catalog.db present) must name the node key: {out[-600:]!r}"
    p = s.run("tenant", "list")
    assert p.returncode != 0 and ("node.key" in p.stderr or "node key" in p.stderr), \
        f"`tenant list` without node.key: exit {p.returncode}: {p.stderr[-400:]!r}"
    # it must not have silently made a new node key (and a fresh, empty catalog)
    assert not (s.data_dir / "node.key").exists(), "a new node.key was created over the data"


def test_init_without_kek_says_keys_init(tmp_path):
    env = fvtest.clean_env()
    env["FORMVAULT_DATA_DIR"] = str(tmp_path / "data")
    env.pop("FORMVAULT_KEK_FILE", None)
    p = subprocess.run([str(BIN), "init"], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode != 0, "init without a KEK succeeded"
    assert "no KEK configured" in p.stderr and "formvault keys init" in p.stderr, p.stderr
    assert not (tmp_path / "data" / "catalog.db").exists(), "init wrote a catalog without a KEK"


# ------------------------------------------------------------- 3. tampering

def _tamper_node(nodes, n_records=120):
    """acme (with big records spanning many pages) and beta; stopped.
    Returns (server, acme api, beta api, acme tenant.db path, marker tag)."""
    s = nodes(tenants=("acme", "beta"), start=False)
    ta, tb = s.token("acme"), s.token("beta")
    s.start()
    a = Api(s.base, "acme", "shop", ta)
    b = Api(s.base, "beta", "shop", tb)
    tag = uuid.uuid4().hex[:8]
    for i in range(0, n_records, 20):
        a.add_ok("Item", [{"Title": f"a{j}", "Marker": f"ACME{tag}{j}",
                           "Description": f"ACME{tag}{j} " + "q" * 3000}
                          for j in range(i, i + 20)])
    b.add_ok("Item", [{"Title": f"b{j}", "Marker": f"BETA{tag}{j}"} for j in range(5)])
    assert s.stop() == 0
    db = s.data_dir / "tenants" / tenant_id(s, "acme") / "tenant.db"
    for suffix in ("-wal", "-shm"):
        w = Path(str(db) + suffix)
        assert not w.exists() or w.stat().st_size == 0 or suffix == "-shm", \
            f"{w} not checkpointed after a clean stop ({w.stat().st_size} bytes)"
    return s, a, b, db, tag


def tenant_id(s, name):
    out = s.cli("tenant", "list")
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 2 and f[1] == name:
            return f[0]
    raise AssertionError(f"tenant {name} not in `tenant list`: {out}")


def _assert_beta_fine(b, tag):
    recs, _ = b.scan("All_Items")
    assert sorted(r["Marker"] for r in recs) == sorted(f"BETA{tag}{j}" for j in range(5)), \
        "the untouched tenant lost data"
    b.add_ok("Item", [{"Title": "after"}])


def test_flipped_byte_in_a_data_page_is_an_error_not_data(nodes):
    """One flipped byte in the middle of a data page (never page 1). The
    report is a 5xx error, never data; the log names the page and file.
    The Item table shares the file with the change log and indexes, so a
    given page may not be one the report reads: up to 6 pages in the middle
    are tried one at a time (the file restored in between); a report that
    reads fine must then be exactly the stored data, and at least one try
    must hit a page the report reads."""
    s, a, b, db, tag = _tamper_node(nodes)
    want = sorted(f"ACME{tag}{j}" for j in range(120))
    original = db.read_bytes()
    psz = page_size(db)
    npages = len(original) // psz
    assert npages >= 20, f"tenant.db has only {npages} pages"
    tried = []
    hit = None
    for pgno in range(npages // 2, npages // 2 + 6):     # 1-based, far from page 1
        off = (pgno - 1) * psz + psz // 2
        data = bytearray(original)
        data[off] ^= 0x01
        db.write_bytes(bytes(data))
        log_at = len(s.log_text())
        s.start()
        r = a.report("All_Items", {"max_records": "1000"})
        if r.status_code == 200:
            b_ = body_of(r)
            got = sorted(x.get("Marker") for x in b_.get("data", []))
            descs_ok = all(x.get("Description") == f"{x.get('Marker')} " + "q" * 3000
                           for x in b_.get("data", []))
            assert b_.get("code") == 3000 and got == want and descs_ok, \
                f"page {pgno} tampered: HTTP 200 with wrong data:\n  {describe(r)}"
            tried.append(pgno)
            s.stop()
            continue
        assert r.status_code == 500 and body_of(r).get("code") == 2930, \
            f"tampered page {pgno}: expected HTTP 500 / 2930 (docs/keys.md):\n  {describe(r)}"
        assert f"ACME{tag}" not in r.text, "tampered page: the response carries data"
        hit = (pgno, s.log_text()[log_at:], describe(r))
        break
    assert hit, (f"flipping a byte in page(s) {tried} of {npages} never made the report fail "
                 f"(and it returned the right data each time): not one of the pages read?")
    pgno, log, resp = hit
    lines = [ln for ln in log.splitlines() if "tenant.db" in ln and re.search(rf"\b{pgno}\b", ln)]
    assert lines, (f"page {pgno} tampered, the request failed ({resp}), but the log must name "
                   f"page {pgno} of tenants/.../tenant.db; the log since the start:\n"
                   + "\n".join(log.splitlines()[-6:]))
    _assert_beta_fine(b, tag)


def test_swapped_pages_are_an_error(nodes):
    s, a, b, db, tag = _tamper_node(nodes)
    psz = page_size(db)
    npages = db.stat().st_size // psz
    p1, p2 = npages // 2, npages // 2 + 1        # two neighbours in the middle (1-based)
    with open(db, "r+b") as f:
        f.seek((p1 - 1) * psz)
        x = f.read(psz)
        f.seek((p2 - 1) * psz)
        y = f.read(psz)
        assert x != y
        f.seek((p1 - 1) * psz)
        f.write(y)
        f.seek((p2 - 1) * psz)
        f.write(x)
    s.start()
    r = report_fails(a, "All_Items")
    assert r.status_code == 500 and body_of(r).get("code") == 2930, \
        f"swapped pages: expected HTTP 500 / 2930 (docs/keys.md):\n  {describe(r)}"
    assert f"ACME{tag}" not in r.text
    _assert_beta_fine(b, tag)


def test_tenant_db_copied_over_another_tenant_is_an_error(nodes):
    s, a, b, db, tag = _tamper_node(nodes, n_records=40)
    beta_db = s.data_dir / "tenants" / tenant_id(s, "beta") / "tenant.db"
    for suffix in ("-wal", "-shm"):
        w = Path(str(beta_db) + suffix)
        if w.exists():
            w.unlink()
    shutil.copy(db, beta_db)
    # the server may refuse beta at start or per request; either way it must
    # never serve acme's records as beta's, and acme keeps working
    s.start()
    for report in ("All_Items", "All_Customers"):
        r = b.report(report, {"max_records": "1000"})
        assert f"ACME{tag}" not in r.text, \
            f"beta's URL served acme's data after copying acme's tenant.db:\n  {describe(r)}"
        assert r.status_code >= 500, \
            f"a foreign tenant.db must be an error (key/identity mismatch):\n  {describe(r)}"
    recs, _ = a.scan("All_Items")
    assert len(recs) == 40, "acme lost data"


# ------------------------------------------------------ 4. no plaintext copy

def test_sqlite3_cli_cannot_read_the_files(nodes):
    if not shutil.which("sqlite3"):
        pytest.fail("the sqlite3 CLI is required")
    s = nodes(tenants=("acme",), start=False)
    s.start()
    api = Api(s.base, "acme", "shop", s.token("acme"))
    tag = uuid.uuid4().hex
    api.add_ok("Item", [{"Title": "x", "Marker": f"SQ{tag}"}])
    s.stop()
    for rel in ("catalog.db", f"tenants/{tenant_id(s, 'acme')}/tenant.db"):
        path = s.data_dir / rel
        before = path.read_bytes()
        p = subprocess.run(["sqlite3", "-readonly", str(path),
                            "SELECT count(*) FROM sqlite_master"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode != 0 and "not a database" in p.stderr, \
            f"sqlite3 {rel}: exit {p.returncode}, out {p.stdout!r}, err {p.stderr!r}"
        p = subprocess.run(["sqlite3", "-readonly", str(path), ".dump"],
                           capture_output=True, text=True, timeout=30)
        assert f"SQ{tag}" not in p.stdout and "CREATE TABLE" not in p.stdout, \
            f"sqlite3 .dump of {rel} shows content: {p.stdout[:300]!r}"
        assert path.read_bytes() == before, f"sqlite3 changed {rel}"
    s.start()
    assert api.find("All_Items", f'Marker == "SQ{tag}"'), "record lost"


# --------------------------------------------------- 5. tenant key rotation

def test_rotate_tenant_with_server_stopped(nodes):
    s = new_enc_node(nodes, start=False)
    tok = s.token("acme")
    import_enc_rows(s, "acme", 500)
    _, st = status(s)
    assert st["acme"]["versions"] == {1: "active"}, st["acme"]["line"]
    out = s.cli("keys", "rotate-tenant", "acme")
    assert "version 2" in out, f"rotate-tenant output: {out!r}"
    _, st = status(s)
    assert st["acme"]["versions"] == {1: "destroyed", 2: "active"}, \
        ("after rotate-tenant (server stopped) expected v2 active, v1 destroyed: "
         f"{st['acme']['line']}")
    assert "done" in st["acme"]["rotation"], st["acme"]["line"]
    assert st["beta"]["versions"] == {1: "active"}, f"beta touched: {st['beta']['line']}"
    s.start()
    api = Api(s.base, "acme", "vault", tok)
    check_enc_rows(api, 500)
    new = [enc_row(i, "new") for i in range(3)]
    api.add_ok("Secret", new)
    check_enc_rows(api, 500, extra=new)
    # == on an encrypted field (blind index) still finds records of both versions
    assert [r["Code"] for r in api.find("All_Secrets", 'Mail == "user1@example.com"')] \
        == ["k1", "k1new"], "blind index lookups broken after rotation"
    s.restart()
    check_enc_rows(api, 500, extra=new)


def test_rotate_tenant_with_server_running(nodes):
    s = new_enc_node(nodes, start=False)
    tok = s.token("acme")
    n = 5000
    import_enc_rows(s, "acme", n)
    s.start()
    api = Api(s.base, "acme", "vault", tok)
    errors, written, stop = [], [], threading.Event()

    def reader():
        r_api = api.clone()
        while not stop.is_set():
            try:
                r = r_api.report("All_Secrets", {"max_records": "200",
                                                 "criteria": 'N < 200'})
                b = r.json()
                if r.status_code != 200 or b.get("code") != 3000 or len(b["data"]) != 200:
                    errors.append(("read", describe(r)))
            except Exception as e:  # noqa: BLE001
                errors.append(("read", repr(e)))
            time.sleep(0.02)

    def writer():
        w_api = api.clone()
        i = 0
        while not stop.is_set():
            rec = enc_row(i, "during")
            try:
                r = w_api.add("Secret", [rec])
                if r.status_code == 200 and r.json().get("code") == 3000:
                    written.append(rec)
                else:
                    errors.append(("write", describe(r)))
            except Exception as e:  # noqa: BLE001
                errors.append(("write", repr(e)))
            i += 1
            time.sleep(0.01)

    threads = [threading.Thread(target=reader, daemon=True),
               threading.Thread(target=writer, daemon=True)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    out = s.cli("keys", "rotate-tenant", "acme")
    assert "background" in out and "keys status" in out, \
        f"with a server running, rotate-tenant must say the job is queued: {out!r}"

    def done():
        _, st = status(s)
        a = st["acme"]
        return (a["versions"] == {1: "destroyed", 2: "active"} and "done" in a["rotation"],
                a["line"])
    try:
        wait_for(done, 30, "rotation job with the server running finished (v1 destroyed)",
                 interval=0.25)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors, f"{len(errors)} request errors during the rotation, e.g. {errors[:3]}"
    assert len(written) > 5, f"only {len(written)} writes during the rotation"
    check_enc_rows(api, n, extra=written)
    s.restart()
    check_enc_rows(api, n, extra=written)
    _, st = status(s)
    assert st["acme"]["versions"] == {1: "destroyed", 2: "active"}, st["acme"]["line"]


# ------------------------------------------------------------------ 6. BYOK

def _wrap_openssl(pem, key, out):
    p = subprocess.run(["openssl", "pkeyutl", "-encrypt", "-pubin", "-inkey", str(pem),
                        "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256",
                        "-pkeyopt", "rsa_mgf1_md:sha256", "-in", str(key), "-out", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"openssl pkeyutl: {p.stderr}"


CLOCK_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
int clock_gettime(clockid_t c, struct timespec *ts)
{
    static int (*real)(clockid_t, struct timespec *);
    if (!real)
        real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int r = real(c, ts);
    const char *o = getenv("FV_TEST_CLOCK_OFFSET_S");
    if (r == 0 && c == CLOCK_REALTIME && o)
        ts->tv_sec += atol(o);
    return r;
}
"""


def clock_shim(tmp):
    """An LD_PRELOAD library moving CLOCK_REALTIME by $FV_TEST_CLOCK_OFFSET_S."""
    src = Path(tmp) / "clock.c"
    so = Path(tmp) / "libclock.so"
    src.write_text(CLOCK_SHIM)
    p = subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(so), str(src), "-ldl"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"building the clock shim: {p.stderr}"
    return so


def test_byok_import_revoke_reimport(nodes):
    s = nodes(tenants=("acme", "beta"), start=False,
              extra_env={"FORMVAULT_KEY_CHECK_INTERVAL_MS": "200"})
    ta, tb = s.token("acme"), s.token("beta")
    s.start()
    a = Api(s.base, "acme", "shop", ta)
    b = Api(s.base, "beta", "shop", tb)
    tag = uuid.uuid4().hex[:8]
    a.add_ok("Item", [{"Title": f"a{i}", "Marker": f"BYOK{tag}{i}"} for i in range(10)])
    b.add_ok("Item", [{"Title": "b", "Marker": f"BETA{tag}"}])
    d = s.tmp

    # absent transport key
    key = d / "tenant-kek.bin"
    key.write_bytes(os.urandom(32))
    pem0 = d / "t0.pem"
    other = d / "other.wrapped"
    s.cli("keys", "import-params", "beta", "--out", pem0)   # beta's key, not acme's
    _wrap_openssl(pem0, key, other)
    p = s.run("keys", "import", "acme", "--wrapped", other)
    assert p.returncode != 0 and "import-params" in p.stderr, \
        f"import without a transport key for acme: exit {p.returncode}: {p.stderr!r}"

    # import with openssl
    pem = d / "t.pem"
    s.cli("keys", "import-params", "acme", "--out", pem)
    assert "BEGIN PUBLIC KEY" in pem.read_text(), pem.read_text()[:200]
    # garbage wrapped file
    garbage = d / "garbage.wrapped"
    garbage.write_bytes(os.urandom(384))
    p = s.run("keys", "import", "acme", "--wrapped", garbage)
    assert p.returncode != 0 and p.stderr.strip(), f"garbage import: exit {p.returncode}"
    assert re.search(r"unwrap|decrypt|invalid|corrupt|not a|transport", p.stderr, re.I), \
        f"garbage wrapped key: the error must say why: {p.stderr!r}"
    short = d / "short.wrapped"
    short.write_bytes(b"not a key\n")
    p = s.run("keys", "import", "acme", "--wrapped", short)
    assert p.returncode != 0 and p.stderr.strip(), f"short garbage import: exit {p.returncode}"

    wrapped = d / "k.wrapped"
    _wrap_openssl(pem, key, wrapped)
    out = s.cli("keys", "import", "acme", "--wrapped", wrapped)
    m = re.search(r"'(imported:[0-9a-f]+)'", out)
    assert m, f"keys import output: {out!r}"
    kid = m.group(1)
    _, st = status(s)
    assert st["acme"]["kek"] == kid and st["beta"]["kek"] == "node KEK", st
    wait_for(data_ok(a, "All_Items"), 3, "acme readable under its own KEK")
    assert len(a.scan("All_Items")[0]) == 10
    a.add_ok("Item", [{"Title": "own", "Marker": f"OWN{tag}"}])

    # revoke: 503 / 2930 / key unavailable within ~2 s; beta unaffected
    t0 = time.monotonic()
    s.cli("keys", "revoke", "acme")
    wait_for(gets_503_key_unavailable(a, "All_Items"), 2.5,
             "acme requests get 503/2930 'key unavailable' after revoke")
    elapsed = time.monotonic() - t0
    r = a.add("Item", [{"Title": "x"}])
    assert r.status_code == 503 and body_of(r).get("code") == 2930, \
        f"writes must be refused after revoke:\n  {describe(r)}"
    _, st = status(s)
    assert "REVOKED" in st["acme"]["kek"], st["acme"]["line"]
    assert len(b.scan("All_Items")[0]) == 1, "beta affected by acme's revocation"
    b.add_ok("Item", [{"Title": "b2"}])
    # after a restart too (the revocation is persistent)
    s.restart()
    wait_for(gets_503_key_unavailable(a, "All_Items"), 2.5, "acme still revoked after restart")
    assert len(b.scan("All_Items")[0]) == 2

    # a different key is refused
    pem2 = d / "t2.pem"
    s.cli("keys", "import-params", "acme", "--out", pem2)
    key2 = d / "other-kek.bin"
    key2.write_bytes(os.urandom(32))
    w2 = d / "k2.wrapped"
    _wrap_openssl(pem2, key2, w2)
    p = s.run("keys", "import", "acme", "--wrapped", w2)
    assert p.returncode != 0 and "not the revoked" in p.stderr and kid in p.stderr, \
        f"importing a different key after revoke: exit {p.returncode}: {p.stderr!r}"
    _, st = status(s)
    assert "REVOKED" in st["acme"]["kek"], f"refused import changed state: {st['acme']['line']}"

    # the same key again (our wrap-for-import this time) restores the data
    w3 = d / "k3.wrapped"
    s.cli("keys", "wrap-for-import", "--public", pem2, "--key", key, "--out", w3)
    out = s.cli("keys", "import", "acme", "--wrapped", w3)
    assert kid in out, f"re-import of the same key: {out!r}"
    wait_for(data_ok(a, "All_Items"), 3, "acme readable again after re-import")
    recs = a.scan("All_Items")[0]
    assert sorted(r["Marker"] for r in recs) == \
        sorted([f"BYOK{tag}{i}" for i in range(10)] + [f"OWN{tag}"]), "data lost by revoke/import"
    a.add_ok("Item", [{"Title": "back"}])
    print(f"revocation took effect after {elapsed:.2f}s")


def test_byok_expired_transport_key(nodes):
    s = nodes(tenants=("acme",), start=False)
    d = s.tmp
    shim = clock_shim(d)
    pem = d / "t.pem"
    s.cli("keys", "import-params", "acme", "--out", pem)
    key = d / "k.bin"
    key.write_bytes(os.urandom(32))
    w = d / "k.wrapped"
    s.cli("keys", "wrap-for-import", "--public", pem, "--key", key, "--out", w)
    later = {"LD_PRELOAD": str(shim), "FV_TEST_CLOCK_OFFSET_S": str(25 * 3600)}
    if os.environ.get("FORMVAULT_SANITIZED"):
        # The ASan runtime wants to come first; the shim only wraps the clock.
        later["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
    p = run_env(s, later, "keys", "import", "acme", "--wrapped", w)
    assert p.returncode != 0 and "expired" in p.stderr, \
        f"import 25 h after import-params: exit {p.returncode}: {p.stdout!r} {p.stderr!r}"
    _, st = status(s)
    assert st["acme"]["kek"] == "node KEK", f"expired import changed the tenant: {st['acme']}"
    # within the validity the same file imports fine
    out = s.cli("keys", "import", "acme", "--wrapped", w)
    assert "imported:" in out


def test_wrap_for_import_checks_its_input(nodes):
    s = nodes(tenants=("acme",), start=False)
    d = s.tmp
    pem = d / "t.pem"
    s.cli("keys", "import-params", "acme", "--out", pem)
    k31 = d / "k31.bin"
    k31.write_bytes(os.urandom(31))
    p = s.run("keys", "wrap-for-import", "--public", pem, "--key", k31, "--out", d / "o1")
    assert p.returncode != 0 and "31 bytes" in p.stderr, p.stderr
    k = d / "k.bin"
    k.write_bytes(os.urandom(32))
    bad_pem = d / "bad.pem"
    bad_pem.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    p = s.run("keys", "wrap-for-import", "--public", bad_pem, "--key", k, "--out", d / "o2")
    assert p.returncode != 0 and p.stderr.strip(), f"bad public key: exit {p.returncode}"
    assert not (d / "o2").exists() or (d / "o2").stat().st_size == 0


# --------------------------------------------------------------- 7. PKCS#11

def test_pkcs11_node_kek(nodes, tmp_path):
    env, pin = softhsm(tmp_path, ("T",))
    env.update({"FORMVAULT_KEK_PROVIDER": "pkcs11",
                "FORMVAULT_KEK_PKCS11_MODULE": SOFTHSM_MODULE,
                "FORMVAULT_KEK_PKCS11_TOKEN": "T",
                "FORMVAULT_KEK_PKCS11_KEY": "node-kek",
                "FORMVAULT_KEK_PKCS11_PIN_FILE": str(pin),
                "FORMVAULT_KEK_FILE": ""})
    s = Server(extra_env=env)
    nodes.made.append(s)
    out = s.cli("keys", "init", "--pkcs11")
    assert "pkcs11:T/node-kek" in out, out
    s.init()
    s.tenant("acme")
    s.import_app(APPS / "test_app.json", "acme")
    tok = s.token("acme")
    nk = (s.data_dir / "node.key").read_text()
    assert "pkcs11" in nk, f"node.key does not name the pkcs11 KEK: {nk}"
    s.start()
    api = Api(s.base, "acme", "shop", tok)
    tag = uuid.uuid4().hex
    ids = api.add_ok("Item", [{"Title": "hsm", "Marker": f"HSM{tag}"}])
    assert api.get_ok("All_Items", ids[0])["Marker"] == f"HSM{tag}"
    head, _ = status(s)
    assert "pkcs11:T/node-kek" in head and "reachable" in head and "UNREACHABLE" not in head, head
    s.stop()
    assert not marker_hits(s.data_dir, [f"HSM{tag}"])

    out = serve_refused(s, {"FORMVAULT_KEK_PKCS11_TOKEN": "Nope"})
    assert "Nope" in out and "token" in out, f"wrong token label: {out[-400:]!r}"
    out = serve_refused(s, {"FORMVAULT_KEK_PKCS11_KEY": "no-such-key"})
    assert "no-such-key" in out and "key" in out, f"wrong key label: {out[-400:]!r}"
    out = serve_refused(s, {"FORMVAULT_KEK_PKCS11_MODULE": "/nonexistent/libp11.so"})
    assert "/nonexistent/libp11.so" in out, f"missing module: {out[-400:]!r}"
    # a wrong PIN
    bad_pin = tmp_path / "bad.pin"
    bad_pin.write_text("0000")
    bad_pin.chmod(0o400)
    out = serve_refused(s, {"FORMVAULT_KEK_PKCS11_PIN_FILE": str(bad_pin)})
    assert re.search(r"pin|login", out, re.I), f"wrong PIN: {out[-400:]!r}"
    # everything still fine with the right configuration
    s.extra_env["FORMVAULT_KEY_CHECK_INTERVAL_MS"] = "200"
    s.start()
    assert api.get_ok("All_Items", ids[0])["Marker"] == f"HSM{tag}"
    # the HSM goes away while serving: /readyz says so, the open tenant keeps
    # working on its unwrapped keys, the log names the KEK
    hsm_util(env, "--delete-token", "--token", "T")

    def not_ready():
        r = requests.get(s.op_url("/readyz"), verify=False, timeout=5)
        return r.status_code == 503 and "kek unavailable" in r.text, (r.status_code, r.text)
    wait_for(not_ready, 3, "/readyz 503 after the node HSM token disappeared")
    assert api.get_ok("All_Items", ids[0])["Marker"] == f"HSM{tag}"
    assert "pkcs11:T/node-kek" in s.log_text() and "unreachable" in s.log_text()
    s.stop()
    out = serve_refused(s)
    assert "'T'" in out and "token" in out, f"deleted token: the error must name it: {out[-400:]!r}"


def test_pkcs11_tenant_byok_token_lost_while_serving(nodes, tmp_path):
    env, pin = softhsm(tmp_path, ("A",))
    env["FORMVAULT_KEY_CHECK_INTERVAL_MS"] = "200"
    s = nodes(tenants=("acme", "beta"), start=False, extra_env=env)
    ta, tb = s.token("acme"), s.token("beta")
    # the tenant's key on its own token (generated with our CLI)
    gen = {"FORMVAULT_KEK_PKCS11_MODULE": SOFTHSM_MODULE, "FORMVAULT_KEK_PKCS11_TOKEN": "A",
           "FORMVAULT_KEK_PKCS11_KEY": "acme-kek", "FORMVAULT_KEK_PKCS11_PIN_FILE": str(pin)}
    p = run_env(s, gen, "keys", "init", "--pkcs11")
    assert p.returncode == 0, p.stderr
    out = s.cli("keys", "use-pkcs11", "acme", "--module", SOFTHSM_MODULE, "--token", "A",
                "--key", "acme-kek", "--pin-file", pin)
    assert "pkcs11:A/acme-kek" in out, out
    _, st = status(s)
    assert st["acme"]["kek"] == "pkcs11:A/acme-kek" and st["beta"]["kek"] == "node KEK", st
    s.start()
    a = Api(s.base, "acme", "shop", ta)
    b = Api(s.base, "beta", "shop", tb)
    tag = uuid.uuid4().hex[:8]
    a.add_ok("Item", [{"Title": "a", "Marker": f"P11{tag}{i}"} for i in range(5)])
    b.add_ok("Item", [{"Title": "b", "Marker": f"B{tag}"}])

    # revoke / restore
    s.cli("keys", "revoke", "acme")
    wait_for(gets_503_key_unavailable(a, "All_Items"), 2.5, "acme 503 after pkcs11 revoke")
    expect(b.report("All_Items"), 200, 3000)
    s.cli("keys", "restore", "acme")
    wait_for(data_ok(a, "All_Items"), 3, "acme readable after restore")

    # the token disappears while serving
    hsm_util(env, "--delete-token", "--token", "A")
    wait_for(gets_503_key_unavailable(a, "All_Items"), 3.5,
             "acme gets 503/2930 'key unavailable' after its token was deleted")
    r = a.add("Item", [{"Title": "x"}])
    assert r.status_code == 503 and body_of(r).get("code") == 2930, describe(r)
    recs = b.scan("All_Items")[0]
    assert [x["Marker"] for x in recs] == [f"B{tag}"], "beta affected"
    b.add_ok("Item", [{"Title": "b2"}])
    log = s.log_text()
    assert "pkcs11:A/acme-kek" in log or "acme-kek" in log, \
        f"the log must say which KEK was lost:\n{s.log_tail(10)}"
    assert s.running()


# ---------------------------------------------------------- 8. shredding

def test_shred_with_server_stopped(nodes):
    s = nodes(tenants=("acme", "beta"), start=False)
    ta, tb = s.token("acme"), s.token("beta")
    s.start()
    a = Api(s.base, "acme", "shop", ta)
    b = Api(s.base, "beta", "shop", tb)
    tag = uuid.uuid4().hex[:8]
    a.add_ok("Item", [{"Title": "a", "Marker": f"SHR{tag}{i}"} for i in range(5)])
    b.add_ok("Item", [{"Title": "b", "Marker": f"B{tag}"}])
    s.stop()
    acme_dir = s.data_dir / "tenants" / tenant_id(s, "acme")
    p = s.run("tenant", "shred", "acme")
    assert p.returncode != 0 and "--yes" in p.stderr, f"shred without --yes: {p.stderr!r}"
    _, st = status(s)
    assert st["acme"]["state"] == "active", "shred without --yes changed the tenant"
    out = s.cli("tenant", "shred", "acme", "--yes")
    assert "shredded" in out, out
    lst = s.cli("tenant", "list")
    assert re.search(r"\bacme\b.*\bshredded\b", lst), f"tenant list: {lst}"
    _, st = status(s)
    assert st["acme"]["versions"] == {} and st["acme"]["state"] == "shredded", st["acme"]["line"]
    assert (acme_dir / "tenant.db").exists(), "the tenant.db file should still exist"
    s.start()
    r = a.report("All_Items")
    assert r.status_code in (401, 503) and f"SHR{tag}" not in r.text, describe(r)
    # key operations on it are refused
    for args in (["keys", "rotate-tenant", "acme"], ["keys", "import-params", "acme"]):
        p = s.run(*args)
        assert p.returncode != 0 and "shredded" in p.stderr, \
            f"{' '.join(args)} on a shredded tenant: exit {p.returncode}: {p.stderr!r}"
    p = s.run("changelog", "--tenant", "acme")
    assert p.returncode != 0 and f"SHR{tag}" not in p.stdout, \
        f"changelog of a shredded tenant: exit {p.returncode}: {p.stdout[:300]!r}"
    assert [x["Marker"] for x in b.scan("All_Items")[0]] == [f"B{tag}"]
    b.add_ok("Item", [{"Title": "b2"}])
    s.stop()
    assert not marker_hits(s.data_dir, [f"SHR{tag}"])


def test_shredded_tenant_gets_no_new_tokens(nodes):
    """After shredding, the tenant's tokens are destroyed (docs/keys.md); a
    new token must not be issued for it either (the tenant can never serve
    again), and a request with any token must not succeed."""
    s = nodes(tenants=("acme",), start=False)
    s.cli("tenant", "shred", "acme", "--yes")
    p = s.run("token", "create", "--tenant", "acme", "--scopes", "all")
    tok = p.stdout.strip()
    if p.returncode == 0 and tok:
        s.start()
        r = Api(s.base, "acme", "shop", tok).report("All_Items")
        assert r.status_code in (401, 503), describe(r)
    assert p.returncode != 0 and "shredded" in p.stderr, \
        (f"`token create --tenant acme` for a shredded tenant: exit {p.returncode}, "
         f"printed a token {tok!r}, stderr {p.stderr!r}")


def test_shred_while_serving(nodes):
    s = nodes(tenants=("acme", "beta"), start=False,
              extra_env={"FORMVAULT_KEY_CHECK_INTERVAL_MS": "200"})
    ta, tb = s.token("acme"), s.token("beta")
    s.start()
    a = Api(s.base, "acme", "shop", ta)
    b = Api(s.base, "beta", "shop", tb)
    a.add_ok("Item", [{"Title": "a", "Marker": "m"}])
    b.add_ok("Item", [{"Title": "b"}])
    s.cli("tenant", "shred", "acme", "--yes")

    def acme_fails():
        r = a.report("All_Items")
        return r.status_code in (401, 503), describe(r)
    wait_for(acme_fails, 2.5, "acme requests fail after shred while serving")
    r = a.add("Item", [{"Title": "after-shred"}])
    assert r.status_code in (401, 503), f"write accepted after shred:\n  {describe(r)}"
    expect(b.report("All_Items"), 200, 3000)
    b.add_ok("Item", [{"Title": "b2"}])
    assert s.running()
    s.restart()
    r = a.report("All_Items")
    assert r.status_code in (401, 503), describe(r)
    assert len(b.scan("All_Items")[0]) == 2


# --------------------------------------------------------- 9. KEK rotation

def test_rotate_kek(nodes):
    s = nodes(tenants=("acme", "beta"), start=False)
    ta = s.token("acme")
    old = s.kek_file
    new = s.kek_dir / "kek-2.key"
    out = s.cli("keys", "init", "--kek-file", new)
    assert new.exists() and (new.stat().st_mode & 0o777) == 0o400 and new.stat().st_size == 32, out
    p = s.run("keys", "init", "--kek-file", s.data_dir / "in.key")
    assert p.returncode != 0 and "inside the data directory" in p.stderr, p.stderr
    p = s.run("keys", "init", "--kek-file", new)
    assert p.returncode != 0, "keys init overwrote an existing KEK file"
    # a tenant with its own (imported) KEK is re-wrapped too
    pem = s.tmp / "t.pem"
    s.cli("keys", "import-params", "beta", "--out", pem)
    key = s.tmp / "beta.kek"
    key.write_bytes(os.urandom(32))
    w = s.tmp / "beta.wrapped"
    s.cli("keys", "wrap-for-import", "--public", pem, "--key", key, "--out", w)
    s.cli("keys", "import", "beta", "--wrapped", w)
    tb = s.token("beta")
    s.start()
    a = Api(s.base, "acme", "shop", ta)
    b = Api(s.base, "beta", "shop", tb)
    tag = uuid.uuid4().hex[:8]
    a.add_ok("Item", [{"Title": "a", "Marker": f"KR{tag}{i}"} for i in range(5)])
    b.add_ok("Item", [{"Title": "b", "Marker": f"KB{tag}"}])
    node_key_before = (s.data_dir / "node.key").read_bytes()

    p = s.run("keys", "rotate-kek", "--new-kek-file", new)
    assert p.returncode != 0 and "stop the server" in p.stderr, \
        f"rotate-kek while serving: exit {p.returncode}: {p.stderr!r}"
    assert (s.data_dir / "node.key").read_bytes() == node_key_before
    s.stop()
    out = s.cli("keys", "rotate-kek", "--new-kek-file", new)
    assert "re-wrapped" in out, out
    # the old KEK no longer opens the data directory
    out = serve_refused(s)
    assert "wrong KEK" in out, f"start with the old KEK after rotation: {out[-400:]!r}"
    s.extra_env["FORMVAULT_KEK_FILE"] = str(new)
    head, st = status(s)
    assert "reachable" in head and st["acme"]["versions"] == {1: "active"}, head
    s.start()
    assert sorted(x["Marker"] for x in a.scan("All_Items")[0]) == \
        sorted(f"KR{tag}{i}" for i in range(5))
    assert [x["Marker"] for x in b.scan("All_Items")[0]] == [f"KB{tag}"]
    s.stop()
    # running it again with the new KEK configured: nothing to do, no damage
    nk = (s.data_dir / "node.key").read_bytes()
    p = s.run("keys", "rotate-kek", "--new-kek-file", new)
    txt = (p.stdout + p.stderr).lower()
    assert (p.returncode != 0 and txt.strip()) or re.search(r"nothing|already|0 keys", txt), \
        f"rotate-kek again to the same KEK: exit {p.returncode}: {p.stdout!r} {p.stderr!r}"
    assert (s.data_dir / "node.key").read_bytes() == nk or p.returncode == 0
    # ... and the old KEK as the "new" one must not be accepted silently either
    s.start()
    assert len(a.scan("All_Items")[0]) == 5 and len(b.scan("All_Items")[0]) == 1
    a.add_ok("Item", [{"Title": "after"}])
    s.stop()
    assert old.exists()
