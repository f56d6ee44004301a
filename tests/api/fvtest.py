"""Helpers shared by the black-box suites (tests/api, tests/system).

A `Server` runs the real `formvault` binary on free ports with a temporary
data directory (STYLE 35); an `Api` is a small Creator v2.1 client bound to
one owner, app and token; `expect()` checks HTTP status and Creator code and
fails with the request, the expectation and the actual body; `golden()`
compares a response body with a template in tests/api/golden/.

Nothing here depends on pytest, so scripts can import it too.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import requests
import urllib3

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
warnings.filterwarnings("ignore", message="Unverified HTTPS request")

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
APPS = HERE / "apps"
GOLDEN = HERE / "golden"
BIN = Path(os.environ.get("FORMVAULT_BIN", str(REPO / "build" / "formvault")))

ALL_SCOPES = [
    "ZohoCreator.form.CREATE",
    "ZohoCreator.report.READ",
    "ZohoCreator.report.UPDATE",
    "ZohoCreator.report.DELETE",
    "ZohoCreator.report.CREATE",
    "ZohoCreator.meta.form.READ",
    "ZohoCreator.meta.application.READ",
    "ZohoCreator.dashboard.READ",
]

DATA_PREFIXES = ["/creator/v2.1/data", "/api/v2.1"]
META_PREFIXES = ["/creator/v2.1/meta", "/api/v2.1/meta"]

READY_TIMEOUT_S = 20.0
CLI_TIMEOUT_S = 120.0


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env():
    """The caller's environment without FORMVAULT_* settings (they would leak
    into the server under test), except the ones that select the suite."""
    keep = {"FORMVAULT_BIN", "FORMVAULT_URL", "FORMVAULT_TOKEN", "FORMVAULT_OWNER"}
    return {k: v for k, v in os.environ.items()
            if not k.startswith("FORMVAULT_") or k in keep}


class CliError(AssertionError):
    pass


class Server:
    """One formvault node: a data directory plus, while running, a `serve`
    process. stderr (the JSON-lines log) goes to <tmp>/serve.log."""

    def __init__(self, extra_env=None, data_dir=None):
        if not BIN.exists():
            raise FileNotFoundError(f"formvault binary not found at {BIN} (set FORMVAULT_BIN)")
        self.tmp = Path(tempfile.mkdtemp(prefix="fvtest-"))
        self.data_dir = Path(data_dir) if data_dir else self.tmp / "data"
        self.extra_env = dict(extra_env or {})
        self.https_port = free_port()
        self.http_port = free_port()
        self.operator_port = free_port()
        self.proc = None
        self.log_path = self.tmp / "serve.log"
        self._log_file = None
        self.starts = 0
        # The master key (KEK) lives outside the data directory, mode 0400.
        self.kek_dir = self.tmp / "keys"
        self.kek_dir.mkdir(mode=0o700)
        self.kek_file = self.kek_dir / "kek.key"
        self.kek_file.write_bytes(os.urandom(32))
        self.kek_file.chmod(0o400)

    # ---------------------------------------------------------------- CLI
    def env(self):
        e = clean_env()
        e.update({
            "FORMVAULT_DATA_DIR": str(self.data_dir),
            "FORMVAULT_HTTPS_PORT": str(self.https_port),
            "FORMVAULT_HTTP_PORT": str(self.http_port),
            "FORMVAULT_OPERATOR_PORT": str(self.operator_port),
            "FORMVAULT_BIND": "127.0.0.1",
            "FORMVAULT_OPERATOR_BIND": "127.0.0.1",
            "FORMVAULT_KEK_FILE": str(self.kek_file),
        })
        e.update(self.extra_env)
        return e

    def run(self, *args, input=None, timeout=CLI_TIMEOUT_S):
        """Run `formvault <args>`; returns the CompletedProcess (text)."""
        return subprocess.run([str(BIN), *map(str, args)], env=self.env(), input=input,
                              capture_output=True, text=True, timeout=timeout)

    def cli(self, *args, input=None, timeout=CLI_TIMEOUT_S):
        """Run a CLI command that must succeed; returns stdout."""
        p = self.run(*args, input=input, timeout=timeout)
        if p.returncode != 0:
            raise CliError(f"`formvault {' '.join(map(str, args))}` exited {p.returncode}\n"
                           f"stdout: {p.stdout[-2000:]}\nstderr: {p.stderr[-2000:]}")
        return p.stdout

    def init(self):
        self.cli("init")
        return self

    def tenant(self, name):
        self.cli("tenant", "create", name)

    def import_app(self, path, tenant):
        self.cli("app", "import", str(path), "--tenant", tenant)

    def token(self, tenant, scopes=None, expires=None):
        scopes = scopes if scopes is not None else ALL_SCOPES
        args = ["token", "create", "--tenant", tenant, "--scopes", ",".join(scopes)]
        if expires:
            args += ["--expires", expires]
        out = self.cli(*args).strip()
        lines = out.splitlines()
        assert len(lines) == 1 and re.fullmatch(r"\S{16,}", lines[0]), \
            f"`formvault token create` must print only the token, got {out!r}"
        return lines[0]

    def changelog(self, tenant, after=None, limit=None):
        args = ["changelog", "--tenant", tenant]
        if after is not None:
            args += ["--after", after]
        if limit is not None:
            args += ["--limit", limit]
        out = self.cli(*args)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    # -------------------------------------------------------------- serve
    def start(self):
        assert self.proc is None, "server already running"
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(BIN), "serve"], env=self.env(),
                                     stdout=self._log_file, stderr=self._log_file)
        self.starts += 1
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"formvault serve exited with {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                r = requests.get(self.op_url("/healthz"), verify=False, timeout=1)
                if r.status_code == 200:
                    return self
                last = f"HTTP {r.status_code}"
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"formvault serve not healthy within {READY_TIMEOUT_S}s "
                           f"(last: {last}):\n{self.log_tail()}")

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL after timeout. Returns the exit status."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
        self._closed()
        return rc

    def kill(self):
        """SIGKILL: no chance to flush or clean up."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._closed()

    SANITIZER_MARKS = (b"ERROR: AddressSanitizer", b"ERROR: LeakSanitizer",
                       b"runtime error:", b"WARNING: ThreadSanitizer")

    def _closed(self):
        self.proc = None
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        self.check_sanitizers()

    def check_sanitizers(self):
        """Fail when the server's log holds a sanitizer report (make check-asan)."""
        try:
            with open(self.log_path, "rb") as f:
                log = f.read()
        except OSError:
            return
        for mark in self.SANITIZER_MARKS:
            at = log.find(mark)
            if at >= 0:
                raise AssertionError("sanitizer report in the server log:\n" +
                                     log[max(0, at - 200):at + 4000].decode("utf-8", "replace"))

    def restart(self, kill=False):
        """Stop (or SIGKILL) and start again on the same data dir and ports."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -------------------------------------------------------------- URLs
    @property
    def base(self):
        return f"https://127.0.0.1:{self.https_port}"

    def url(self, path):
        return self.base + path

    def op_url(self, path):
        return f"https://127.0.0.1:{self.operator_port}{path}"

    def http_url(self, path):
        return f"http://127.0.0.1:{self.http_port}{path}"

    # -------------------------------------------------------------- log
    def log_text(self):
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def log_records(self):
        out = []
        for line in self.log_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"_unparsed": line})
        return out


def new_node(tenants=("acme",), app=APPS / "test_app.json", extra_env=None, start=True):
    """A fresh initialised node with `app` imported into each tenant."""
    s = Server(extra_env=extra_env)
    try:
        s.init()
        for t in tenants:
            s.tenant(t)
            if app:
                s.import_app(app, t)
        if start:
            s.start()
    except BaseException:
        s.cleanup()
        raise
    return s


# ------------------------------------------------------------------ client

def describe(r):
    req = r.request
    body = req.body
    if isinstance(body, bytes):
        body = body[:300].decode("utf-8", "replace")
    elif isinstance(body, str):
        body = body[:300]
    path = re.sub(r"https?://[^/]+", "", req.url)
    return (f"{req.method} {path}" + (f" body={body}" if body else "") +
            f"\n  -> HTTP {r.status_code} {r.text[:600]}")


def body_of(r):
    try:
        return r.json()
    except ValueError:
        raise AssertionError(f"response is not JSON:\n  {describe(r)}")


def expect(r, status, code, data=None):
    """Assert HTTP status and Creator code; returns the parsed body."""
    b = body_of(r)
    actual_code = b.get("code") if isinstance(b, dict) else None
    assert r.status_code == status and actual_code == code, (
        f"expected HTTP {status} code {code}, got HTTP {r.status_code} code {actual_code}\n"
        f"  {describe(r)}")
    if status >= 400 or code not in (3000, 3002):
        assert "data" not in b or b["data"] in ({}, [], None), \
            f"error response must carry no data\n  {describe(r)}"
    return b


def error_text(b):
    """The human text of an error body (message, description or error)."""
    parts = []
    for k in ("message", "description", "error"):
        v = b.get(k)
        if isinstance(v, str):
            parts.append(v)
        elif isinstance(v, list):
            parts += [str(x) for x in v]
    return " | ".join(parts)


def expect_error(r, status, code):
    """A top-level error: docs/errors.md pins the body to exactly
    {"code": <int>, "message": "<what failed and why>"}."""
    b = expect(r, status, code)
    assert set(b) == {"code", "message"} and isinstance(b["message"], str) and b["message"], \
        f"error body must be exactly {{code, message}}\n  {describe(r)}"
    return b


class Api:
    """Creator v2.1 client for one owner/app/token.

    prefix: data path family, "/creator/v2.1/data" or "/api/v2.1".
    scheme: "Zoho-oauthtoken" or "Bearer".
    """

    def __init__(self, base, owner, app, token, prefix="/creator/v2.1/data",
                 scheme="Zoho-oauthtoken", session=None):
        self.base = base
        self.owner = owner
        self.app = app
        self.token = token
        self.prefix = prefix
        self.scheme = scheme
        self.s = session or requests.Session()
        self.s.verify = False

    def clone(self, **kw):
        d = dict(base=self.base, owner=self.owner, app=self.app, token=self.token,
                 prefix=self.prefix, scheme=self.scheme)
        d.update(kw)
        return Api(**d)

    @property
    def meta_prefix(self):
        return "/api/v2.1/meta" if self.prefix.startswith("/api/") else "/creator/v2.1/meta"

    def headers(self, extra=None):
        h = {}
        if self.token is not None:
            h["Authorization"] = f"{self.scheme} {self.token}"
        if extra:
            h.update(extra)
        return h

    def request(self, method, path, headers=None, **kw):
        kw.setdefault("timeout", 60)
        # explicit: a session-level verify=False loses to REQUESTS_CA_BUNDLE
        kw.setdefault("verify", False)
        return self.s.request(method, self.base + path, headers=self.headers(headers), **kw)

    def data_path(self, *parts):
        return "/".join([self.prefix, self.owner, self.app, *map(str, parts)])

    # records
    def add(self, form, data, result=None, body=None, **kw):
        b = {"data": data} if body is None else body
        if result is not None:
            b["result"] = result
        return self.request("POST", self.data_path("form", form), json=b, **kw)

    def report(self, report, params=None, headers=None):
        return self.request("GET", self.data_path("report", report), params=params,
                            headers=headers)

    def get(self, report, rid, params=None):
        return self.request("GET", self.data_path("report", report, rid), params=params)

    def update(self, report, rid, data, extra=None):
        b = {"data": data}
        b.update(extra or {})
        return self.request("PATCH", self.data_path("report", report, rid), json=b)

    def update_where(self, report, criteria, data, params=None, extra=None):
        b = {"data": data}
        if criteria is not None:
            b["criteria"] = criteria
        b.update(extra or {})
        return self.request("PATCH", self.data_path("report", report), json=b, params=params)

    def delete(self, report, rid):
        return self.request("DELETE", self.data_path("report", report, rid))

    def delete_where(self, report, criteria, params=None, extra=None):
        b = {}
        if criteria is not None:
            b["criteria"] = criteria
        b.update(extra or {})
        return self.request("DELETE", self.data_path("report", report), json=b, params=params)

    def meta(self, *parts, params=None):
        return self.request("GET", "/".join([self.meta_prefix, *parts]), params=params)

    # conveniences
    def add_ok(self, form, records):
        """Add records that must all succeed; returns their IDs in order."""
        r = self.add(form, records)
        b = expect(r, 200, 3000)
        ids = []
        for i, res in enumerate(b["result"]):
            assert res.get("code") == 3000, f"record {i} failed: {res}\n  {describe(r)}"
            ids.append(res["data"]["ID"])
        assert len(ids) == len(records), describe(r)
        return ids

    def add_many(self, form, records):
        ids = []
        for i in range(0, len(records), 200):
            ids += self.add_ok(form, records[i:i + 200])
        return ids

    def get_ok(self, report, rid, params=None):
        return expect(self.get(report, rid, params), 200, 3000)["data"]

    def scan(self, report, params=None, max_records=1000, headers=None):
        """Every record of a report, following record_cursor; 9220/9280 are
        an empty result. Returns (records, number of pages)."""
        p = dict(params or {})
        p["max_records"] = str(max_records)
        out, pages, cursor = [], 0, None
        while True:
            h = dict(headers or {})
            if cursor:
                h["record_cursor"] = cursor
            r = self.report(report, p, headers=h)
            b = body_of(r)
            if b.get("code") in (9220, 9280) and pages == 0:
                assert r.status_code == 200, describe(r)
                return out, 1
            expect(r, 200, 3000)
            pages += 1
            assert isinstance(b["data"], list), describe(r)
            assert len(b["data"]) <= max_records, describe(r)
            out += b["data"]
            cursor = r.headers.get("record_cursor")
            if not cursor:
                return out, pages
            assert len(b["data"]) == max_records, \
                f"a page before the last must be full\n  {describe(r)}"
            assert pages < 10000, "cursor never ends"

    def find(self, report, criteria, **params):
        params["criteria"] = criteria
        recs, _ = self.scan(report, params)
        return recs


# ------------------------------------------------------------------ golden

_ID = re.compile(r"[0-9]{1,20}")


def golden_match(tmpl, val, path="$"):
    """Match val against a golden template. Returns a list of mismatches.

    "<id>" digit string; "<str>" any string; "<int>" integer; "<bool>";
    "<any>" anything; ["<each>", T] a list whose every item matches T;
    a dict matches when its keys are exactly the template's keys, or a
    superset if the template has "...": true; anything else must be equal.
    """
    errs = []
    if isinstance(tmpl, str) and tmpl.startswith("<") and tmpl.endswith(">"):
        kind = tmpl
        ok = {
            "<id>": isinstance(val, str) and _ID.fullmatch(val or "") is not None,
            "<str>": isinstance(val, str),
            "<int>": isinstance(val, int) and not isinstance(val, bool),
            "<bool>": isinstance(val, bool),
            "<any>": True,
        }.get(kind)
        if ok is None:
            raise ValueError(f"unknown golden placeholder {kind}")
        if not ok:
            errs.append(f"{path}: expected {kind}, got {val!r}")
        return errs
    if isinstance(tmpl, list) and len(tmpl) == 2 and tmpl[0] == "<each>":
        if not isinstance(val, list):
            return [f"{path}: expected a list, got {val!r}"]
        if not val:
            errs.append(f"{path}: expected a non-empty list")
        for i, v in enumerate(val):
            errs += golden_match(tmpl[1], v, f"{path}[{i}]")
        return errs
    if isinstance(tmpl, list):
        if not isinstance(val, list) or len(val) != len(tmpl):
            return [f"{path}: expected a list of {len(tmpl)}, got {val!r}"]
        for i, (t, v) in enumerate(zip(tmpl, val)):
            errs += golden_match(t, v, f"{path}[{i}]")
        return errs
    if isinstance(tmpl, dict):
        if not isinstance(val, dict):
            return [f"{path}: expected an object, got {val!r}"]
        open_ = tmpl.get("...") is True
        keys = {k for k in tmpl if k != "..."}
        missing = keys - set(val)
        extra = set(val) - keys
        if missing:
            errs.append(f"{path}: missing keys {sorted(missing)}")
        if extra and not open_:
            errs.append(f"{path}: unexpected keys {sorted(extra)}")
        for k in sorted(keys & set(val)):
            errs += golden_match(tmpl[k], val[k], f"{path}.{k}")
        return errs
    if type(tmpl) is not type(val) or tmpl != val:
        errs.append(f"{path}: expected {tmpl!r}, got {val!r}")
    return errs


def golden(name, r_or_body):
    """Assert a response (or parsed body) matches tests/api/golden/<name>.json."""
    tmpl = json.loads((GOLDEN / f"{name}.json").read_text())
    if isinstance(r_or_body, requests.Response):
        val, where = body_of(r_or_body), describe(r_or_body)
    else:
        val, where = r_or_body, json.dumps(r_or_body)[:600]
    errs = golden_match(tmpl, val)
    assert not errs, f"golden '{name}' mismatch:\n  " + "\n  ".join(errs) + f"\n  {where}"
    return val
