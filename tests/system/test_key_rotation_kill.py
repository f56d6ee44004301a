"""SIGKILL during a tenant key rotation (docs/keys.md "Tenant key rotation",
"rotation interrupted (SIGKILL, power loss) -> the job resumes from its last
saved batch").

20,000 records with encrypted fields (tests/api/apps/enc_app.json) are
imported into acme; then
  1. `keys rotate-tenant acme` (no server) is SIGKILLed after a random short
     delay, `keys resume` is SIGKILLed mid-run several times (once in the
     pages phase), and a last `keys resume` finishes the job;
  2. with the server running, `keys rotate-tenant` queues a job, the server
     is SIGKILLed while it runs it, and after a restart the job completes.
After each, every record is readable and unchanged, only the newest key
version is left, and the other tenant is untouched.

    /usr/bin/python3 -m pytest -q tests/system/test_key_rotation_kill.py
"""
import csv
import random
import re
import subprocess
import time

import pytest

import fvtest
from fvtest import APPS, BIN, Api

pytestmark = pytest.mark.local

N = 20000
ENC_APP = APPS / "enc_app.json"
CLI_KILLS = 3           # resume runs killed at random points (plus the first rotate-tenant)


def enc_row(i):
    return {"Code": f"k{i}", "Plain": f"plain {i}.", "Hidden": f"hidden {i} " + "h" * 60,
            "Mail": f"user{i}@example.com", "N": str(i)}


COLS = ["Code", "Plain", "Hidden", "Mail", "N"]


def status(s):
    p = s.run("keys", "status", timeout=60)
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
        rot = m.group(6).strip()
        jm = re.match(r"v(\d+)->v(\d+) (\w+) (\d+)/(\d+)", rot)
        job = None
        if jm:
            job = {"from": int(jm.group(1)), "to": int(jm.group(2)), "phase": jm.group(3),
                   "done": int(jm.group(4)), "total": int(jm.group(5))}
        rows[m.group(2)] = {"versions": versions, "rotation": rot, "job": job, "line": line}
    return rows


def job_of(s, tenant="acme"):
    return status(s)[tenant]["job"]


def check_all(api, beta, extra_beta):
    recs, _ = api.scan("All_Secrets")
    by = {r["Code"]: r for r in recs}
    assert len(recs) == N and len(by) == N, f"{len(recs)} records ({len(by)} codes), want {N}"
    bad = []
    for i in range(N):
        want = enc_row(i)
        got = by.get(want["Code"])
        if got is None or any(got.get(k) != v for k, v in want.items()):
            bad.append((want["Code"], got))
    assert not bad, f"{len(bad)} records missing or changed, e.g. {bad[:2]}"
    # a blind-index lookup on an encrypted field still works
    hit = api.find("All_Secrets", 'Mail == "user12345@example.com"')
    assert [r["Code"] for r in hit] == ["k12345"], f"blind index lookup: {hit}"
    b = beta.scan("All_Secrets")[0]
    assert sorted(r["Code"] for r in b) == sorted(extra_beta), "beta changed"


def wait_until(pred, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = pred()
        if ok:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout}s; last: {last}")


def sigkill(p):
    p.kill()
    p.wait()


def test_sigkill_during_tenant_key_rotation():
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"seed {seed}")
    s = fvtest.new_node(tenants=("acme", "beta"), app=ENC_APP, start=False)
    try:
        tok, tokb = s.token("acme"), s.token("beta")
        csvp = s.tmp / "rows.csv"
        with open(csvp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\r\n")
            w.writerow(COLS)
            for i in range(N):
                r = enc_row(i)
                w.writerow([r[c] for c in COLS])
        s.cli("import", csvp, "--tenant", "acme", "--app", "vault", "--form", "Secret",
              timeout=300)
        s.start()
        beta = Api(s.base, "beta", "vault", tokb)
        beta.add_ok("Secret", [{"Code": f"b{i}", "Hidden": f"beta {i}"} for i in range(3)])
        beta_codes = [f"b{i}" for i in range(3)]
        s.stop()

        # ------------------------------------------- 1. the CLI is SIGKILLed
        env = s.env()
        history = []
        p = subprocess.Popen([str(BIN), "keys", "rotate-tenant", "acme"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.3, 1.2))
        assert p.poll() is None, \
            f"rotate-tenant of {N} records finished before the kill: {p.communicate()}"
        sigkill(p)
        j = job_of(s)
        history.append(("rotate-tenant", j))
        assert j and j["to"] == 2 and j["phase"] != "done", \
            f"after SIGKILL of rotate-tenant the job must be unfinished: {j}"

        for k in range(CLI_KILLS):
            before = job_of(s)
            p = subprocess.Popen([str(BIN), "keys", "resume"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            last_round = k == CLI_KILLS - 1

            def progressed():
                if p.poll() is not None:
                    return True, "exited"
                j = job_of(s)
                if last_round:          # the last kill lands in the pages phase
                    return j["phase"] in ("pages", "destroy", "done"), j
                return (j["phase"] != before["phase"] or j["done"] > before["done"]), j
            # the dead run's lease (15 s) has to expire before resume can work
            wait_until(progressed, 40, f"keys resume making progress (round {k})")
            time.sleep(rng.uniform(0.0, 0.3 if last_round else 0.8))
            if p.poll() is not None:
                out, err = p.communicate()
                history.append(("resume finished", job_of(s)))
                assert p.returncode == 0, f"keys resume failed: {err.decode()[-500:]}"
                break
            sigkill(p)
            history.append(("resume", job_of(s)))
        print("kills:", history)
        assert sum(1 for h in history if h[1] and h[1]["phase"] != "done") >= 2, \
            f"fewer than 2 kills interrupted the job: {history}"

        p = s.run("keys", "resume", timeout=120)
        assert p.returncode == 0, f"final keys resume exited {p.returncode}: {p.stderr[-800:]}"
        st = status(s)
        assert st["acme"]["versions"] == {1: "destroyed", 2: "active"}, \
            f"after resume: expected v2 active, v1 destroyed: {st['acme']['line']}"
        assert st["acme"]["job"]["phase"] == "done", st["acme"]["line"]
        assert st["beta"]["versions"] == {1: "active"}, st["beta"]["line"]

        s.start()
        api = Api(s.base, "acme", "vault", tok)
        check_all(api, beta, beta_codes)
        api.add_ok("Secret", [{"Code": "after1", "Hidden": "x"}])
        expect_new = ["after1"]

        # ------------------------------------------ 2. the server is SIGKILLed
        out = s.cli("keys", "rotate-tenant", "acme")
        assert "version 3" in out and "background" in out, out

        def running_job():
            j = job_of(s)
            return (j is not None and j["to"] == 3 and
                    (j["done"] > 0 or j["phase"] != "fields")), j
        wait_until(running_job, 30, "the server working on the v3 job")
        time.sleep(rng.uniform(0.0, 1.0))
        s.kill()
        j = job_of(s)
        print("server killed at", j)
        assert j["phase"] != "done", \
            f"the server finished the job before the kill (make N larger): {j}"
        s.start()

        def finished():
            st = status(s)["acme"]
            return (st["versions"] == {1: "destroyed", 2: "destroyed", 3: "active"} and
                    st["job"] and st["job"]["phase"] == "done"), st["line"]
        wait_until(finished, 60, "the job resumed by the restarted server completes",
                   interval=0.5)
        recs, _ = api.scan("All_Secrets")
        got = {r["Code"] for r in recs}
        assert set(expect_new) <= got, "a record written before the rotation is lost"
        assert len(recs) == N + len(expect_new), f"{len(recs)} records"
        # the original N are unchanged (check_all counts only N, so drop the extra)
        for c in expect_new:
            rid = [r for r in recs if r["Code"] == c][0]["ID"]
            assert api.delete("All_Secrets", rid).status_code == 200
        check_all(api, beta, beta_codes)
        s.restart()
        check_all(api, beta, beta_codes)
        assert s.running()
    finally:
        s.cleanup()
