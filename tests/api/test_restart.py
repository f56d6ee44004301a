"""A restart (SIGTERM, then start on the same data dir) keeps records,
tokens and the change log."""
import pytest

from fvtest import Api, expect

pytestmark = pytest.mark.local


def test_restart_keeps_data_and_change_log(make_server):
    s = make_server(tenants=("acme", "beta"))
    tok = s.token("acme")
    api = Api(s.base, "acme", "shop", tok)
    ids = api.add_ok("Item", [{"Title": f"r{i}", "Marker": "restart", "Quantity": i,
                               "Due_Date": "02-Jan-2024",
                               "Owner_Name": {"first_name": "Ré", "last_name": "Start"}}
                              for i in range(5)])
    expect(api.update("All_Items", ids[0], {"Quantity": 100}), 200, 3000)
    expect(api.delete("All_Items", ids[4]), 200, 3000)
    expect(api.add("Item", [{"Marker": "restart"}]), 200, 3002)  # failed: no entry
    before_recs = api.find("All_Items", 'Marker == "restart"', field_config="all")
    before_log = s.changelog("acme")

    cert_before = (s.data_dir / "tls" / "cert.pem").read_bytes()
    rc = s.stop()
    assert rc == 0, f"SIGTERM must exit 0, got {rc}:\n{s.log_tail()}"
    s.start()
    assert (s.data_dir / "tls" / "cert.pem").read_bytes() == cert_before, \
        "the self-signed certificate must be reused after a restart"

    after_recs = api.find("All_Items", 'Marker == "restart"', field_config="all")
    assert after_recs == before_recs
    assert [x["ID"] for x in after_recs] == ids[:4]
    assert api.get_ok("All_Items", ids[0])["Quantity"] == "100"
    expect(api.get("All_Items", ids[4]), 200, 3190)

    after_log = s.changelog("acme")
    assert after_log == before_log
    seqs = [e["seq"] for e in after_log]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"seq not contiguous: {seqs}"
    item_log = [e for e in after_log if e["form"] == "Item"]
    assert [e["op"] for e in item_log] == ["insert"] * 5 + ["update", "delete"]

    # new writes continue the sequence and new IDs do not reuse old ones
    [new_id] = api.add_ok("Item", [{"Title": "after", "Marker": "restart"}])
    assert new_id not in ids
    log2 = s.changelog("acme", after=seqs[-1])
    assert [(e["seq"], e["op"], str(e["record_id"])) for e in log2] == \
        [(seqs[-1] + 1, "insert", new_id)]
    # acme's writes never show in beta's change log (it holds only its app import)
    assert [e for e in s.changelog("beta") if e.get("record_id") or e.get("form")] == []


def test_restart_twice_quickly(make_server):
    s = make_server()
    api = Api(s.base, "acme", "shop", s.token("acme"))
    [rid] = api.add_ok("Scratch", [{"Label": "x"}])
    for _ in range(2):
        s.restart()
        assert api.get_ok("All_Scratch", rid)["Label"] == "x"
