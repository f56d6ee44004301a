"""Concurrent clients: unique rules hold under races, no request fails with
a server error, and counts add up."""
import threading

from fvtest import body_of, describe, error_text, expect


def run_threads(n, fn):
    out = [None] * n
    barrier = threading.Barrier(n)

    def work(i):
        barrier.wait()
        try:
            out[i] = fn(i)
        except Exception as e:  # reported below, with the thread number
            out[i] = e
    ts = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    for i, o in enumerate(out):
        assert not isinstance(o, Exception), f"thread {i}: {o!r}"
    return out


def test_unique_race_one_winner(node, uniq):
    sku = "RACE-" + uniq

    def add(i):
        r = node.api().add("Item", [{"Title": f"race{i}", "Marker": uniq, "Sku": sku}])
        return r
    rs = run_threads(16, add)
    codes = []
    for r in rs:
        b = body_of(r)
        assert r.status_code == 200, describe(r)
        codes.append(b["result"][0]["code"])
        if b["result"][0]["code"] != 3000:
            assert "Sku" in error_text(b["result"][0]) or "SKU" in error_text(b["result"][0]) \
                or "unique" in error_text(b["result"][0]), describe(r)
    assert codes.count(3000) == 1, f"{codes.count(3000)} adds of one unique value succeeded"
    got = node.api().find("All_Items", f'Marker == "{uniq}"')
    assert len(got) == 1


def test_parallel_adds_and_reads(node, uniq):
    per = 25

    def work(i):
        api = node.api()
        ids = []
        for j in range(per):
            ids += api.add_ok("Bulk", [{"N": i * 1000 + j, "Batch": uniq}])
            r = api.report("All_Bulk", {"criteria": f'Batch == "{uniq}"', "max_records": "200"})
            assert r.status_code == 200 and body_of(r)["code"] == 3000, describe(r)
        return ids
    out = run_threads(8, work)
    ids = [i for ids in out for i in ids]
    assert len(set(ids)) == 8 * per, "duplicate IDs handed out under concurrency"
    recs, _ = node.api().scan("All_Bulk", {"criteria": f'Batch == "{uniq}"'})
    assert sorted(x["ID"] for x in recs) == sorted(ids)


def test_parallel_updates_same_record(node, uniq):
    api = node.api()
    [rid] = api.add_ok("Bulk", [{"N": 0, "Batch": uniq, "State": "s0"}])

    def upd(i):
        a = node.api()
        for j in range(10):
            expect(a.update("All_Bulk", rid, {"State": f"t{i}-{j}"}), 200, 3000)
    run_threads(8, upd)
    rec = api.get_ok("All_Bulk", rid, {"field_config": "all"})
    assert rec["State"] in {f"t{i}-9" for i in range(8)}, rec
