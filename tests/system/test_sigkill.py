"""SIGKILL mid-write (STYLE 38): acknowledged writes survive, nothing is
half-written, the change log matches the data.

Writers add single records with unique markers to shop/Event; the server is
SIGKILLed while they run, then restarted on the same data dir. Three rounds
on one data dir, under 60 s in all.

    /usr/bin/python3 -m pytest -q tests/system
"""
import hashlib
import threading
import time
import uuid

import pytest
import requests

import fvtest
from fvtest import Api

pytestmark = pytest.mark.local

WRITERS = 8
ROUNDS = 3
KILL_AFTER_S = 1.5     # at least this long into the writes ...
MIN_ACKED = 40         # ... and after at least this many acknowledged adds
MAX_WAIT_S = 10.0      # but never later than this


def payload(marker):
    """Deterministic field values from the marker, so a record read back can
    be checked field by field."""
    h = hashlib.sha256(marker.encode()).hexdigest()
    text = (h * 40)[: 500 + int(h[:2], 16) * 8]   # 500..2540 chars
    amount = f"{int(h[2:8], 16) % 100000}.{int(h[8:10], 16) % 100:02d}"
    return {"Payload": "first line\n" + text, "Amount": amount}


def updated_amount(marker):
    h = hashlib.sha256(("u" + marker).encode()).hexdigest()
    return f"{int(h[2:8], 16) % 100000}.{int(h[8:10], 16) % 100:02d}"


class Writer(threading.Thread):
    def __init__(self, base, token, rnd, wid, stop, update=False):
        super().__init__(daemon=True)
        self.api = Api(base, "acme", "shop", token)
        self.rnd, self.wid, self.stop, self.update = rnd, wid, stop, update
        self.acked = {}       # marker -> ID
        self.attempted = set()  # every marker sent (acked or not)
        self.refused = []     # answered but not added: must not happen before the kill
        self.upd_acked = set()  # markers whose update was acknowledged
        self.upd_sent = set()   # markers whose update was sent
        self.error = None       # (monotonic time, exception) that ended the thread
        self.latencies = []     # seconds per answered request

    def run(self):
        i = 0
        while not self.stop.is_set():
            marker = f"r{self.rnd}-w{self.wid}-{i}-{uuid.uuid4().hex[:8]}"
            rec = {"Marker": marker, "Writer": self.wid, "Seq": i, **payload(marker)}
            self.attempted.add(marker)
            t = time.monotonic()
            try:
                r = self.api.add("Event", [rec])
                self.latencies.append(time.monotonic() - t)
            except requests.RequestException as e:
                self.error = (time.monotonic(), e)
                return  # the server died (or failed); this add was in flight
            try:
                b = r.json()
            except ValueError:
                b = {}
            res = (b.get("result") or [{}])[0]
            if r.status_code == 200 and b.get("code") == 3000 and res.get("code") == 3000 \
                    and res.get("data", {}).get("ID"):
                self.acked[marker] = res["data"]["ID"]
            else:
                self.refused.append((time.monotonic(), marker, r.status_code, r.text[:200],
                                     "add"))
            i += 1
            if self.update and marker in self.acked:
                self.upd_sent.add(marker)
                try:
                    r = self.api.update("All_Events", self.acked[marker],
                                        {"Amount": updated_amount(marker)})
                except requests.RequestException as e:
                    self.error = (time.monotonic(), e)
                    return
                try:
                    ok = r.status_code == 200 and r.json().get("code") == 3000
                except ValueError:
                    ok = False
                if ok:
                    self.upd_acked.add(marker)
                else:
                    self.refused.append((time.monotonic(), marker, r.status_code,
                                         r.text[:200], "update"))


def check(api, server, writers):
    acked, attempted = {}, set()
    for w in writers:
        acked.update(w.acked)
        attempted |= w.attempted
    recs, _ = api.scan("All_Events", {"field_config": "all"})
    by_marker = {}
    for r in recs:
        m = r.get("Marker")
        assert m, f"record without marker (half-written?): {r}"
        assert m not in by_marker, f"marker {m} stored twice"
        by_marker[m] = r
    # every acknowledged add is there, with the acknowledged ID
    missing = [m for m in acked if m not in by_marker]
    assert not missing, f"{len(missing)} acknowledged adds lost after SIGKILL, e.g. {missing[:3]}"
    for m, rid in acked.items():
        assert by_marker[m]["ID"] == rid, f"{m}: ID {by_marker[m]['ID']} != acknowledged {rid}"
    # everything present was sent, and is complete
    for m, r in by_marker.items():
        if not m.startswith(f"r{writers[0].rnd}-"):
            continue
        assert m in attempted, f"record {m} was never sent (garbage)"
        want = payload(m)
        wid, seq = m.split("-")[1][1:], m.split("-")[2]
        assert r.get("Writer") == wid and r.get("Seq") == seq, f"{m}: {r}"
        assert r.get("Payload") == want["Payload"], \
            f"{m}: Payload torn ({len(r.get('Payload', ''))} chars)"
        upd_acked = any(m in w.upd_acked for w in writers)
        upd_sent = any(m in w.upd_sent for w in writers)
        if upd_acked:
            assert r.get("Amount") == updated_amount(m), f"{m}: acknowledged update lost"
        elif upd_sent:
            assert r.get("Amount") in (want["Amount"], updated_amount(m)), f"{m}: torn update"
        else:
            assert r.get("Amount") == want["Amount"], \
                f"{m}: Amount {r.get('Amount')} != {want['Amount']}"
    # change log: exactly one insert per present record, nothing else, seq contiguous
    log = server.changelog("acme")
    seqs = [e["seq"] for e in log]
    assert seqs, "empty change log"
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), \
        f"change log seq not contiguous: {seqs[:5]}...{seqs[-5:]}"
    inserts = [str(e["record_id"]) for e in log if e["form"] == "Event" and e["op"] == "insert"]
    updates = [str(e["record_id"]) for e in log if e["form"] == "Event" and e["op"] == "update"]
    others = [e for e in log if e["form"] == "Event" and e["op"] not in ("insert", "update")]
    assert not others, f"unexpected change log entries: {others[:3]}"
    # the log replays to the data: a record shows the updated amount exactly
    # when the log holds its update, once
    assert len(updates) == len(set(updates)), "an update logged twice"
    for r in recs:
        m = r["Marker"]
        if not m.startswith(f"r{writers[0].rnd}-"):
            continue
        logged = r["ID"] in set(updates)
        shows = r.get("Amount") == updated_amount(m) != payload(m)["Amount"]
        assert logged == shows, f"{m}: update in log={logged}, in data={shows}"
    present = sorted(r["ID"] for r in recs)
    assert sorted(inserts) == present, (
        f"change log has {len(inserts)} inserts ({len(set(inserts))} distinct) for "
        f"{len(present)} records; only in log: {sorted(set(inserts) - set(present))[:3]}, "
        f"only in data: {sorted(set(present) - set(inserts))[:3]}")
    this_round = [m for m in by_marker if m.startswith(f"r{writers[0].rnd}-")]
    return len(acked), len(this_round)


@pytest.mark.parametrize("update", [False, True], ids=["adds", "adds_and_updates"])
def test_sigkill_mid_write(update):
    t0 = time.monotonic()
    s = fvtest.new_node()
    try:
        token = s.token("acme")
        api = Api(s.base, "acme", "shop", token)
        for rnd in range(ROUNDS):
            stop = threading.Event()
            writers = [Writer(s.base, token, rnd, w, stop, update) for w in range(WRITERS)]
            for w in writers:
                w.start()
            started = time.monotonic()
            time.sleep(KILL_AFTER_S)
            while sum(len(w.acked) for w in writers) < MIN_ACKED and \
                    time.monotonic() - started < MAX_WAIT_S:
                time.sleep(0.05)
            killed_at = time.monotonic()
            s.kill()
            stop.set()
            for w in writers:
                w.join(timeout=15)
                assert not w.is_alive(), "a writer hung after the server died"
            early = [(w.wid, round(killed_at - w.error[0], 2), repr(w.error[1])[:300])
                     for w in writers if w.error and w.error[0] < killed_at]
            assert not early, f"round {rnd}: requests failed while the server was up " \
                              f"(writer, seconds before the kill, error): {early}"
            # an answer cut short by the kill (e.g. headers without the body)
            # counts as in flight; a refusal before the kill is a failure
            refused = [(round(killed_at - t, 3), *rest) for w in writers
                       for (t, *rest) in w.refused if t < killed_at]
            assert not refused, f"round {rnd}: writes refused while the server was up " \
                                f"(seconds before the kill, marker, status, body): {refused[:3]}"
            n_acked = sum(len(w.acked) for w in writers)
            lat = sorted(x for w in writers for x in w.latencies)
            assert n_acked >= MIN_ACKED, (
                f"round {rnd}: only {n_acked} adds acknowledged in "
                f"{killed_at - started:.1f}s (slowest answers: {[round(x, 2) for x in lat[-5:]]}"
                f"; {sum(len(w.attempted) for w in writers)} sent)")
            s.start()
            acked, present = check(api, s, writers)
            print(f"round {rnd}: {sum(len(w.attempted) for w in writers)} sent, {acked} "
                  f"acknowledged, {present} present after SIGKILL + restart; "
                  f"max latency {lat[-1]:.3f}s")
            assert present - acked <= WRITERS, \
                f"{present - acked} unacknowledged records present, at most {WRITERS} in flight"
        assert time.monotonic() - t0 < 30, "each variant has 30 s of the 60 s budget"
    finally:
        s.cleanup()
