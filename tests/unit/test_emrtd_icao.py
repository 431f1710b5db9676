"""BAC and secure messaging against the worked example of ICAO Doc 9303 Part 11, Appendix D
(D.2 key derivation, D.3 mutual authentication, D.4 secure messaging), byte for byte.

The values were checked against several independent published implementations' tests of the same
appendix (JMRTD-style Java, pypassport-style Python, Go and Rust eMRTD libraries)."""

import pytest

from agent.emrtd import _crypto
from agent.emrtd.bac import AccessKeys, Challenge, check_digit, mrz_information
from agent.emrtd.errors import AccessDeniedError, SecureMessagingError
from agent.emrtd.sm import SecureMessaging

H = bytes.fromhex

KEYS = AccessKeys.from_mrz("L898902C<", "690806", "940623")
CHALLENGE = Challenge(rnd_icc=H("4608F91988702212"), rnd_ifd=H("781723860C06C226"),
                      k_ifd=H("0B795240CB7049B01C19B33E32804F0B"))  # fmt: skip
EXT_AUTH_DATA = H("72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F25F1448EEA8AD90A7")
EXT_AUTH_RESP = H("46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F2F2D235D074D7449")
KS_ENC, KS_MAC = H("979EC13B1CBFE9DCD01AB0FED307EAE5"), H("F1CB1F1FB5ADF208806B89DC579DC1F8")

# D.4: (plain command, protected command, protected response, plain response data, SSC after)
EXCHANGES = [
    ("00A4020C02011E", "0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800",
     "990290008E08FA855A5D4C50A8ED9000", "", "887022120C06C228"),
    ("00B0000004", "0CB000000D9701048E08ED6705417E96BA5500",
     "8709019FF0EC34F9922651990290008E08AD55CC17140B2DED9000", "60145F01", "887022120C06C22A"),
    ("00B0000412", "0CB000040D9701128E082EA28A70F3C7B53500",
     "871901FB9235F4E4037F2327DCC8964F1F9B8C30F42C8E2FFF224A990290008E08C8B2787EAEA07D749000",
     "04303130365F36063034303030305C026175", "887022120C06C22C"),
]  # fmt: skip


def test_d2_mrz_information_and_keys() -> None:
    assert mrz_information("L898902C", "690806", "940623") == "L898902C<369080619406236"
    assert KEYS.seed == H("239AB9CB282DAF66231DC5A4DF6BFBAE")
    assert KEYS.k_enc == H("AB94FDECF2674FDFB9B391F85D7F76F2")
    assert KEYS.k_mac == H("7962D9ECE03D1ACD4C76089DCE131543")


def test_d3_external_authenticate_and_session() -> None:
    assert CHALLENGE.command_data(KEYS) == EXT_AUTH_DATA
    sm = CHALLENGE.session(KEYS, EXT_AUTH_RESP)
    assert _crypto.decrypt(KEYS.k_enc, EXT_AUTH_RESP[:32])[16:] == H("0B4F80323EB3191CB04970CB4052790B")
    assert (sm.ks_enc, sm.ks_mac, sm.ssc) == (KS_ENC, KS_MAC, H("887022120C06C226"))
    assert _crypto.derive_key(H("0036D272F5C350ACAC50C3F572D23600"), _crypto.ENC) == KS_ENC


def test_d4_secure_messaging_reads_ef_com() -> None:
    sm = SecureMessaging(KS_ENC, KS_MAC, H("887022120C06C226"))
    for plain, protected, response, data, ssc in EXCHANGES:
        assert sm.protect(H(plain)) == H(protected)
        assert sm.unprotect(H(response)) == (H(data), 0x9000)
        assert sm.ssc == H(ssc)


def test_wrong_mrz_is_access_denied() -> None:
    wrong = AccessKeys.from_mrz("L898902C<", "690807", "940623")
    with pytest.raises(AccessDeniedError):
        CHALLENGE.session(wrong, EXT_AUTH_RESP)


def test_altered_response_is_rejected() -> None:
    sm = SecureMessaging(KS_ENC, KS_MAC, H("887022120C06C228"))
    sm.protect(H("00B0000004"))
    tampered = bytearray(H(EXCHANGES[1][2]))
    tampered[4] ^= 1
    with pytest.raises(SecureMessagingError):
        sm.unprotect(bytes(tampered))


def test_check_digits_and_parity() -> None:
    assert [check_digit(f) for f in ("L898902C<", "690806", "940623", "<<<<")] == ["3", "1", "6", "0"]
    assert all(bin(b).count("1") % 2 for b in KEYS.k_enc + KS_MAC)
    assert _crypto.unpad(_crypto.pad(b"")) == b""
    with pytest.raises(ValueError):
        _crypto.unpad(bytes(8))


def test_the_keys_tool_prints_the_appendix_d_keys(capsys: pytest.CaptureFixture[str]) -> None:
    from agent.emrtd.__main__ import main  # noqa: PLC0415

    assert main(["keys", "--doc", "L898902C", "--dob", "690806", "--expiry", "940623"]) == 0
    out = capsys.readouterr().out
    assert "L898902C<369080619406236" in out and "AB94FDECF2674FDFB9B391F85D7F76F2" in out
    assert "7962D9ECE03D1ACD4C76089DCE131543" in out and "239AB9CB282DAF66231DC5A4DF6BFBAE" in out
