"""The embedded broker's reading of Mosquitto's password and ACL files, and its topic matching."""

import pytest

from tools import brokerfiles as bf
from tools.embroker import allowed, matches, parse_acl, parse_passwords

ACL = bf.acl_text([("38001", "qr-0001"), ("38001", "qr-0002")], [(bf.collector_username("38001"), "38001")])
RULES = parse_acl(ACL)


@pytest.mark.parametrize(
    ("user", "topic", "access", "ok"),
    [
        ("qr-0001", "cccd/v1/38001/qr-0001/read", "write", True),
        ("qr-0001", "cccd/v1/38001/qr-0001/result", "read", True),
        ("qr-0001", "cccd/v1/38001/qr-0001/result", "write", False),  # only the collector answers
        ("qr-0001", "cccd/v1/38001/qr-0002/read", "write", False),  # another device's topic
        ("qr-0001", "cccd/v1/38001/+/read", "read", False),  # no wildcard for a device
        ("qr-0001", "cccd/v1/38001/#", "read", False),
        ("qr-0001", "cccd/v1/38002/qr-0001/read", "write", False),  # another facility
        ("collector_38001", "cccd/v1/38001/+/read", "read", True),
        ("collector_38001", "cccd/v1/38001/qr-0002/read", "read", True),
        ("collector_38001", "cccd/v1/38001/qr-0002/result", "write", True),
        ("collector_38001", "cccd/v1/38002/+/read", "read", False),
        ("collector_38001", "cccd/v1/38001/qr-0002/read", "write", False),  # no forging reads
        ("collector_38001", "#", "read", False),
        ("stranger", "cccd/v1/38001/qr-0001/read", "write", False),
        (None, "cccd/v1/38001/qr-0001/read", "write", False),
    ],
)
def test_the_acl_grants_what_mosquittos_would_and_no_more(
    user: str | None, topic: str, access: str, ok: bool
) -> None:
    assert allowed(RULES, user, topic, access) is ok


def test_matching_follows_mqtt_filters() -> None:
    assert matches("a/b/c", "a/+/c") and matches("a/b/c", "a/#") and matches("a", "a/#")
    assert not matches("a/b", "a/b/c") and not matches("a/b/c", "a/b") and not matches("a/+/c", "a/b/c")


def test_password_and_acl_files_tolerate_comments_blanks_and_junk() -> None:
    users = parse_passwords("# comment\n\nqr-0001:$7$101$abc$def\nno-colon-line\n:empty-name\n")
    assert users == {"qr-0001": "$7$101$abc$def"}
    rules = parse_acl("topic read orphan/before/any/user\nuser a\ntopic write x/y\ntopic z\n# c\nuser b\n")
    assert rules == {"a": [("write", "x/y"), ("readwrite", "z")], "b": []}
