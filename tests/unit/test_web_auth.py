"""The dashboard's accounts: password hashes, users in the store, sessions and the login throttle."""

import unicodedata

import pytest

from collector.db import open_db
from collector.web import auth

FAST = 10


def test_a_hash_names_its_parameters_and_checks_only_its_password() -> None:
    stored = auth.hash_password("mật khẩu đủ dài")  # the production cost, once
    scheme, log_n, r, p, _salt, _digest = stored.split("$")
    assert (scheme, log_n, r, p) == ("scrypt", "17", "8", "1")
    assert auth.verify_password("mật khẩu đủ dài", stored)
    assert not auth.verify_password("mật khẩu đủ dài ", stored)


def test_the_same_password_hashes_differently_and_nfd_is_nfc() -> None:
    nfc = "Mật khẩu của Phòng CNTT"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfd != nfc
    first, second = auth.hash_password(nfc, log_n=FAST), auth.hash_password(nfc, log_n=FAST)
    assert first != second  # a salt each
    assert auth.verify_password(nfd, first) and auth.verify_password(nfc, second)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain",
        "bcrypt$10$8$1$AAAA$AAAA",
        "scrypt$30$8$1$AAAA$AAAA",  # costs that would take the server's memory
        "scrypt$14$100000$1$AAAA$AAAA",
        "scrypt$14$8$1000$AAAA$AAAA",
        "scrypt$10$8$1$not base64!$AAAA",
        "scrypt$x$8$1$AAAA$AAAA",
    ],
)
def test_a_malformed_hash_matches_nothing(stored: str) -> None:
    assert not auth.verify_password("anything at all", stored)


def test_users_in_the_store(store_url: str) -> None:
    db = open_db(store_url)
    try:
        users = auth.Users(db)
        users.add("it-01", "mật khẩu đủ dài", now=1000.0, log_n=FAST)
        users.add("bv.cntt_2", "another long one", now=2000.0, log_n=FAST)
        assert [(u.name, u.created) for u in users.all()] == [("bv.cntt_2", 2000.0), ("it-01", 1000.0)]
        assert users.check("it-01", "mật khẩu đủ dài")
        assert not users.check("it-01", "another long one")
        assert not users.check("nobody", "mật khẩu đủ dài")
        stored = db.query("SELECT password FROM web_users WHERE name = 'it-01'")[0][0]
        assert "mật" not in stored and stored.startswith("scrypt$")
        with pytest.raises(auth.UserError, match="exists already"):
            users.add("it-01", "yet another password", log_n=FAST)
        with pytest.raises(auth.UserError, match="at least 10"):
            users.add("it-03", "short", log_n=FAST)
        for bad in ("", "IT-01", "it 01", "-it", "<script>", "a" * 65):
            with pytest.raises(auth.UserError, match="user name"):
                users.add(bad, "a long enough password", log_n=FAST)
        users.remove("bv.cntt_2")
        with pytest.raises(auth.UserError, match="no user"):
            users.remove("bv.cntt_2")
        assert [u.name for u in users.all()] == ["it-01"] and users.exists("it-01")
    finally:
        db.close()


def test_sessions_expire_and_are_bounded() -> None:
    sessions = auth.Sessions(idle=60.0, lifetime=300.0, limit=3)
    tokens = [sessions.start(f"u{i}", 0.0)[0] for i in range(4)]
    assert len(sessions) == 3 and sessions.get(tokens[0], 1.0) is None  # the oldest made room
    session = sessions.get(tokens[1], 50.0)
    assert session is not None and session.user == "u1" and len(session.csrf) >= 32
    assert sessions.get(tokens[2], 61.0) is None  # idle for 61 s
    for t in (100.0, 150.0, 200.0, 250.0, 300.0):
        assert sessions.get(tokens[1], t) is not None
    assert sessions.get(tokens[1], 301.0) is None  # its lifetime is over, however active
    assert sessions.get("", 0.0) is None and sessions.get("unknown", 0.0) is None


def test_the_throttle_forgets_and_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    throttle = auth.Throttle(max_failures=2, max_address_failures=100, lockout=60.0)
    throttle.failed("it-01", "10.0.0.1", 0.0)
    assert not throttle.refused("it-01", "10.0.0.1", 1.0)
    throttle.failed("it-01", "10.0.0.2", 1.0)
    assert throttle.refused("it-01", "10.0.0.3", 2.0)  # the name is locked, from anywhere
    assert not throttle.refused("it-02", "10.0.0.1", 2.0)
    assert not throttle.refused("it-01", "10.0.0.1", 61.5)  # the first failure is forgotten
    monkeypatch.setattr(auth, "MAX_TRACKED", 10)
    for i in range(50):
        throttle.failed(f"name-{i}", f"10.1.0.{i}", 100.0)
    assert len(throttle._names._times) == 10 and len(throttle._addresses._times) == 10
