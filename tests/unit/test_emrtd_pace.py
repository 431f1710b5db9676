"""PACE-ECDH-GM-AES-CBC-CMAC-128 against the worked example of ICAO Doc 9303 Part 11, Appendix G.1
(MRZ password T22000129 / 640812 / 101031, brainpoolP256r1), byte for byte: every command the
terminal sends, the session keys and the tokens. The values were checked against several
independent published implementations' tests of the same appendix."""

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent.emrtd import _crypto, pace
from agent.emrtd._ec import BRAINPOOL_P256R1 as BP256
from agent.emrtd.errors import AccessDeniedError
from agent.emrtd.sm import SecureMessaging

H = bytes.fromhex
CARD_ACCESS = H("31143012060A04007F0007020204020202010202010D")
NONCE_Z = "95A3A016522EE98D01E76CB6B98B42C3"
SK_MAP = 0x7F4EF07B9EA82FD78AD689B38D0BC78CF21F249D953BC46F4C6E19259C010F99
SK_DH = 0xA73FB703AC1436A18E0CFA5ABB3F7BEC7A070E7A6788486BEE230C4A22762595
PK_MAP_IFD = (
    "047ACF3EFC982EC45565A4B155129EFBC74650DCBFA6362D896FC70262E0C2CC5E"
    "544552DCB6725218799115B55C9BAA6D9F6BC3A9618E70C25AF71777A9C4922D"
)
PK_MAP_IC = (
    "04824FBA91C9CBE26BEF53A0EBE7342A3BF178CEA9F45DE0B70AA601651FBA3F57"
    "30D8C879AAA9C9F73991E61B58F4D52EB87A0A0C709A49DC63719363CCD13C54"
)
PK_DH_IFD = (
    "042DB7A64C0355044EC9DF190514C625CBA2CEA48754887122F3A5EF0D5EDD301C"
    "3556F3B3B186DF10B857B58F6A7EB80F20BA5DC7BE1D43D9BF850149FBB36462"
)
PK_DH_IC = (
    "049E880F842905B8B3181F7AF7CAA9F0EFB743847F44A306D2D28C1D9EC65DF6DB"
    "7764B22277A2EDDC3C265A9F018F9CB852E111B768B326904B59A0193776F094"
)
KS_ENC, KS_MAC = H("F5F0E35C0D7161EE6724EE513A0D9A7F"), H("FE251C7858B356B24514B3BD5F4297D1")
T_IFD, T_IC = "C2B0BD78D94BA866", "3ABB9674BCE93C08"
TRANSCRIPT = [
    ("0022C1A412800A04007F0007020204020283010184010D", "9000"),
    ("10860000027C0000", "7C128010" + NONCE_Z + "9000"),
    ("10860000457C438141" + PK_MAP_IFD + "00", "7C438241" + PK_MAP_IC + "9000"),
    ("10860000457C438341" + PK_DH_IFD + "00", "7C438441" + PK_DH_IC + "9000"),
    ("008600000C7C0A8508" + T_IFD + "00", "7C0A8608" + T_IC + "9000"),
]  # fmt: skip


class Script:
    def __init__(self, steps: list[tuple[str, str]]) -> None:
        self.steps = list(steps)

    def __call__(self, apdu: bytes) -> tuple[bytes, int]:
        expected, answer = self.steps.pop(0)
        assert apdu.hex().upper() == expected
        raw = H(answer)
        return raw[:-2], int.from_bytes(raw[-2:], "big")


def _fixed() -> object:
    keys = iter([SK_MAP, SK_DH])
    return lambda curve: next(keys)


def test_g1_passwords_and_nonce() -> None:
    k = pace.mrz_password("T22000129", "640812", "101031")
    assert k == H("7E2D2A41C74EA0B38CD36F863939BFA8E9032AAD")
    k_pi = _crypto.aes_kdf(k, _crypto.PACE)
    assert k_pi == H("89DED1B26624EC1E634C1989302849DD")
    assert _crypto.aes_cbc(k_pi, H(NONCE_Z), decrypt=True) == H("3F00C4D39D153F2B2A214A078D899B22")


def test_g1_generic_mapping() -> None:
    h = BP256.mul(SK_MAP, BP256.decode(H(PK_MAP_IC)))
    assert BP256.encode(h) == H(
        "0460332EF2450B5D247EF6D3868397D398852ED6E8CAF6FFEEF6BF85CA57057FD5"
        "0840CA7415BAF3E43BD414D35AA4608B93A2CAF3A4E3EA4E82C9C13D03EB7181"
    )
    mapped = BP256.add(BP256.mul(0x3F00C4D39D153F2B2A214A078D899B22, BP256.g), h)
    assert BP256.encode(mapped) == H(
        "048CED63C91426D4F0EB1435E7CB1D74A46723A0AF21C89634F65A9AE87A9265E2"
        "8C879506743F8611AC33645C5B985C80B5F09A0B83407C1B6A4D857AE76FE522"
    )
    shared = BP256.mul(SK_DH, BP256.decode(H(PK_DH_IC)))
    assert shared is not None
    assert shared[0].to_bytes(32, "big") == H(
        "28768D20701247DAE81804C9E780EDE582A9996DB4A315020B2733197DB84925"
    )


def test_g1_whole_exchange_byte_for_byte() -> None:
    (info,) = pace.parse_card_access(CARD_ACCESS)
    assert (info.oid, info.version, info.parameter_id) == (pace.ECDH_GM_AES_128, 2, 13)
    script = Script(TRANSCRIPT)
    sm = pace.run(script, pace.mrz_password("T22000129", "640812", "101031"), pace.MRZ, info, scalar=_fixed())  # type: ignore[arg-type]
    assert not script.steps
    assert (sm.ks_enc, sm.ks_mac, sm.ssc, sm.aes) == (KS_ENC, KS_MAC, bytes(16), True)


def test_aes_secure_messaging_after_g1() -> None:
    """SELECT of the eMRTD application under G.1's session keys (a vector of an independent
    implementation, not of 9303 itself)."""
    sm = SecureMessaging(KS_ENC, KS_MAC, bytes(16), aes=True)
    assert sm.protect(H("00A4040C07A0000002471001")) == H(
        "0CA4040C1D871101752F676B09FAC86A87D632749A49C7CC8E08C18BA1FCE707BD9F00"
    )
    assert sm.unprotect(H("990290008E08BEA7B381C494A0799000")) == (b"", 0x9000)


def test_a_wrong_password_is_access_denied() -> None:
    steps = [*TRANSCRIPT[:4], ("008600000C7C0A8508" + T_IFD + "00", "6300")]
    (info,) = pace.parse_card_access(CARD_ACCESS)
    with pytest.raises(AccessDeniedError, match="CAN"):
        pace.run(
            Script(steps), pace.mrz_password("T22000129", "640812", "101031"), pace.MRZ, info, scalar=_fixed()
        )  # type: ignore[arg-type]


def test_the_curve_is_the_libraries_brainpool_p256r1() -> None:
    key = ec.generate_private_key(ec.BrainpoolP256R1())
    numbers = key.private_numbers()
    assert BP256.mul(numbers.private_value, BP256.g) == (numbers.public_numbers.x, numbers.public_numbers.y)
    with pytest.raises(ValueError, match="not on the curve"):
        BP256.decode(b"\x04" + bytes(63) + b"\x01")
