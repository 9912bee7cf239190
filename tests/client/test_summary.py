"""The live summary's tally from records."""
from system.client.summary import Summary


def test_summary_counts_what_a_user_needs():
    s = Summary()
    for r in [
        {"kind": "attempt", "client": "a", "sock": 1, "n": 0},
        {"kind": "open", "client": "a", "sock": 1},
        {"kind": "attempt", "client": "a", "sock": 2, "n": 1},
        {"kind": "open", "client": "a", "sock": 2},
        {"kind": "displayed", "client": "a", "msg_id": "m1"},
        {"kind": "displayed", "client": "a", "msg_id": "m1"},
        {"kind": "displayed", "client": "b", "msg_id": "m1"},
        {"kind": "close", "client": "a", "sock": 1, "code": 4401},
        {"kind": "handshake_failed", "client": "b", "sock": 1, "status": 403},
        {"kind": "handshake_failed", "client": "b", "sock": 2, "status": None},
        {"kind": "token", "client": "b", "ok": False},
        {"kind": "give_up", "client": "b", "reason": "max_retries"},
    ]:
        s.add(r)
    rows = dict(s.rows())
    assert rows["sockets open now / peak"] == "1 / 2"
    assert rows["connection attempts (reconnects)"] == "2 (1)"
    assert rows["closes by code"] == "4401:1"
    assert rows["failed handshakes by HTTP status"] == "403:1 no answer:1"
    assert rows["manual refreshes (give-ups)"] == "1 max_retries:1"
    assert rows["duplicates displayed / dropped"] == "1 / 0"
    assert rows["token requests (failed)"] == "1 (1)"
