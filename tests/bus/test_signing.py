"""HMAC-SHA256 signing of frames and of the ``X-ExESDB-Signature`` header (docs/http-api.md)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import pickle

import pytest

from bridge.bus import HeaderCheck, Keyring

KEY = "current-secret-key-base-with-at-least-32-chars"
OLD_KEY = "retired-secret-key-base-with-at-least-32-chars"
BODY = b'{"v":1,"id":"0123456789abcdef","instance":"ex_esdb_system"}'
NOW = 1_800_000_000


def _mac(key: str, data: bytes) -> str:
    return hmac.new(key.encode(), data, hashlib.sha256).hexdigest()


def test_signature_is_the_lowercase_hex_hmac_of_the_exact_bytes() -> None:
    """A frame signature is HMAC-SHA256(SECRET_KEY_BASE as UTF-8, body), lowercase hex."""
    assert Keyring.from_secrets(KEY).sign(BODY) == _mac(KEY, BODY)


def test_accepts_its_own_signature() -> None:
    """A body signed with the current key verifies."""
    keyring = Keyring.from_secrets(KEY)
    assert keyring.verify(BODY, keyring.sign(BODY))


@pytest.mark.parametrize("position", [0, 1, len(BODY) // 2, len(BODY) - 1])
def test_rejects_tampered_bytes(position: int) -> None:
    """Changing any byte of a signed body makes the signature fail."""
    keyring = Keyring.from_secrets(KEY)
    signature = keyring.sign(BODY)
    tampered = bytearray(BODY)
    tampered[position] ^= 0x01
    assert not keyring.verify(bytes(tampered), signature)


def test_rejects_appended_bytes() -> None:
    """Bytes added after a signed body make the signature fail."""
    keyring = Keyring.from_secrets(KEY)
    assert not keyring.verify(BODY + b" ", keyring.sign(BODY))


def test_rejects_a_wrong_key() -> None:
    """A signature made with a key the keyring does not hold is refused."""
    signature = Keyring.from_secrets("some-other-key-that-is-long-enough-32").sign(BODY)
    assert not Keyring.from_secrets(KEY).verify(BODY, signature)


@pytest.mark.parametrize(
    "signature",
    ["", "zz", "not hex at all", "ab" * 31, "AB" * 33, "é" * 64, _mac(KEY, BODY)[:-1]],
)
def test_rejects_malformed_signatures(signature: str) -> None:
    """Empty, non-hex, truncated or over-long signatures verify as False, never raise."""
    assert not Keyring.from_secrets(KEY).verify(BODY, signature)


def test_accepts_a_retired_key() -> None:
    """A key from EXESDB_SECRET_KEY_BASE_PREVIOUS still verifies during rotation."""
    keyring = Keyring.from_secrets(KEY, [OLD_KEY])
    assert keyring.verify(BODY, _mac(OLD_KEY, BODY))


def test_signs_with_the_current_key_only() -> None:
    """New messages are always signed with SECRET_KEY_BASE, never a retired key."""
    keyring = Keyring.from_secrets(KEY, [OLD_KEY])
    assert keyring.sign(BODY) == _mac(KEY, BODY)
    assert keyring.sign_header(BODY, NOW) == f"t={NOW},v1={_mac(KEY, f'{NOW}.'.encode() + BODY)}"


def test_empty_retired_entries_are_ignored() -> None:
    """Empty entries in the retired list (e.g. a trailing comma) add no key."""
    assert Keyring.from_secrets(KEY, ["", OLD_KEY, ""]).previous == (OLD_KEY.encode(),)


def test_repr_never_shows_a_key() -> None:
    """The keyring's repr hides every key."""
    shown = repr(Keyring.from_secrets(KEY, [OLD_KEY]))
    assert KEY not in shown
    assert OLD_KEY not in shown


def compared(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    """The pairs hmac.compare_digest is called with from now on (it still compares them)."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    return calls


def test_comparisons_use_the_constant_time_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frame and header checks compare MACs with hmac.compare_digest."""
    calls = compared(monkeypatch)
    keyring = Keyring.from_secrets(KEY, [OLD_KEY])
    assert keyring.verify(BODY, keyring.sign(BODY))
    assert len(calls) == 2  # every key is tried: no early exit
    calls.clear()
    header = keyring.sign_header(BODY, NOW)
    assert keyring.check_header(header, BODY, NOW, 300) is HeaderCheck.OK
    assert len(calls) == 2


def test_a_read_is_verified_frame_by_frame_in_one_call() -> None:
    """``verify_each`` says of each body and signature in order what ``verify`` says: the
    current key's and a retired key's accepted, tampered bytes, another key's signature and
    malformed signatures refused, none of them raising."""
    keyring = Keyring.from_secrets(KEY, [OLD_KEY])
    other = BODY.replace(b"0123", b"4567")
    pairs = [
        (BODY, keyring.sign(BODY)),
        (other, _mac(OLD_KEY, other)),
        (BODY + b" ", keyring.sign(BODY)),
        (BODY, _mac("some-other-key-that-is-long-enough-32", BODY)),
        (BODY, "not hex at all"),
        (BODY, ""),
        (BODY, "é" * 64),
        (other, keyring.sign(other).upper()),
    ]
    verdicts = keyring.verify_each([body for body, _ in pairs], [sig for _, sig in pairs])
    assert verdicts == [keyring.verify(body, signature) for body, signature in pairs]
    assert verdicts == [True, True, False, False, False, False, False, True]


def test_a_read_is_verified_with_the_constant_time_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """``verify_each`` compares each frame's MAC with hmac.compare_digest, under every key."""
    calls = compared(monkeypatch)
    keyring = Keyring.from_secrets(KEY, [OLD_KEY])
    assert keyring.verify_each([BODY, BODY], [keyring.sign(BODY), _mac(OLD_KEY, BODY)]) == [
        True,
        True,
    ]
    assert len(calls) == 4  # every key tried for each frame: no early exit


@pytest.mark.parametrize("length", [0, 1, 32, 63, 64, 65, 200])
@pytest.mark.parametrize("body", [b"", BODY, BODY * 40], ids=["empty", "a frame", "a batch"])
def test_signatures_are_the_standard_hmac_for_keys_of_any_length(length: int, body: bytes) -> None:
    """Signing and verifying agree with the standard library's HMAC-SHA256 for keys shorter
    than, as long as and longer than SHA-256's 64-byte block (hashed first), retired ones too."""
    key = "k" * length
    keyring = Keyring(KEY.encode(), (key.encode(),))
    assert Keyring(key.encode()).sign(body) == _mac(key, body)
    assert keyring.verify(body, _mac(key, body))
    assert keyring.verify(body, _mac(KEY, body))
    assert not keyring.verify(body, _mac(key + "x", body))
    signatures = [_mac(key, body), _mac(KEY, body), _mac(key + "x", body)]
    assert keyring.verify_each([body] * 3, signatures) == [True, True, False]


def test_a_frame_signature_does_not_hash_the_key_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Signing and verifying a frame start from the key's HMAC states made with the keyring:
    hmac.digest, which hashes the padded key again for every message, is not called."""
    keyring = Keyring.from_secrets(KEY, [OLD_KEY])

    def unwanted(*args: object) -> bytes:
        raise AssertionError("hmac.digest called for a frame")

    monkeypatch.setattr(hmac, "digest", unwanted)
    monkeypatch.setattr(hmac, "new", unwanted)
    assert keyring.sign(BODY) == _signed(KEY, BODY)
    assert keyring.verify(BODY, keyring.sign(BODY))
    assert keyring.verify_each([BODY], [keyring.sign(BODY)]) == [True]


def _signed(key: str, data: bytes) -> str:
    """HMAC-SHA256 by hand, as RFC 2104 writes it (hmac.digest may be patched out)."""
    padded = key.encode().ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded) + data).digest()
    return hashlib.sha256(bytes(b ^ 0x5C for b in padded) + inner).hexdigest()


# -- the HTTP header --


def test_header_has_the_stripe_style_format() -> None:
    """The header is t=<unix seconds>,v1=<hex HMAC(key, "<t>." + body)>."""
    header = Keyring.from_secrets(KEY).sign_header(BODY, NOW)
    assert header == f"t={NOW},v1={_mac(KEY, f'{NOW}.'.encode() + BODY)}"


def test_header_check_accepts_a_fresh_valid_header() -> None:
    """A header signed now with the current key is OK."""
    keyring = Keyring.from_secrets(KEY)
    assert keyring.check_header(keyring.sign_header(BODY, NOW), BODY, NOW, 300) is HeaderCheck.OK


@pytest.mark.parametrize("header", [None, "", ",", " , ,\t"])
def test_header_check_reports_a_missing_signature(header: str | None) -> None:
    """No header, an empty one or one of empty entries alone (two empty lines read as one
    list give ",") is 'unsigned', as ``header_missing`` says, not malformed."""
    assert Keyring.from_secrets(KEY).check_header(header, BODY, NOW, 300) is HeaderCheck.MISSING
    assert header is None or Keyring.header_missing(header)


def test_empty_header_entries_are_neither_counted_nor_read() -> None:
    """An empty entry (a trailing comma, an empty line) is no entry: 16 entries and a trailing
    comma have the form, not "17 entries"; a 17th real one is told; a match after empty entries
    is among the 16 read."""
    keyring = Keyring.from_secrets(KEY)
    t, v1 = keyring.sign_header(BODY, NOW).split(",")
    sixteen = ",".join([t, *[f"v1={'ab' * 32}"] * 14, v1])
    assert Keyring.header_fault(sixteen + ",") is None
    assert Keyring.header_fault(sixteen + ", ,") is None
    assert (Keyring.header_fault(f"{sixteen},v1={'ab' * 32}") or "").startswith(
        "it has 17 entries, and only the first 16 are read"
    )
    padded = ",".join([t, *[""] * 20, v1])
    assert Keyring.header_fault(padded) is None
    assert keyring.check_header(padded, BODY, NOW, 300) is HeaderCheck.OK


def test_header_check_rejects_tampered_bytes() -> None:
    """A header over other bytes is a bad signature."""
    keyring = Keyring.from_secrets(KEY)
    header = keyring.sign_header(BODY, NOW)
    assert keyring.check_header(header, BODY + b"x", NOW, 300) is HeaderCheck.BAD


def test_header_check_rejects_a_wrong_key() -> None:
    """A header signed with an unknown key is a bad signature."""
    header = Keyring.from_secrets("an-unknown-key-which-is-long-enough-too").sign_header(BODY, NOW)
    assert Keyring.from_secrets(KEY).check_header(header, BODY, NOW, 300) is HeaderCheck.BAD


def test_header_check_rejects_a_changed_timestamp() -> None:
    """The timestamp is covered by the MAC: moving t invalidates the header."""
    keyring = Keyring.from_secrets(KEY)
    mac = keyring.sign_header(BODY, NOW).split(",v1=")[1]
    assert keyring.check_header(f"t={NOW + 1},v1={mac}", BODY, NOW, 300) is HeaderCheck.BAD


@pytest.mark.parametrize("skew", [-301, 301, -86_400, 86_400])
def test_header_check_rejects_an_expired_timestamp(skew: int) -> None:
    """A valid header whose t is further than the window from now (either way) is expired."""
    keyring = Keyring.from_secrets(KEY)
    header = keyring.sign_header(BODY, NOW + skew)
    assert keyring.check_header(header, BODY, NOW, 300) is HeaderCheck.EXPIRED


@pytest.mark.parametrize("skew", [-300, 300])
def test_header_check_accepts_a_timestamp_at_the_window_edge(skew: int) -> None:
    """A timestamp exactly one window away is still accepted."""
    keyring = Keyring.from_secrets(KEY)
    header = keyring.sign_header(BODY, NOW + skew)
    assert keyring.check_header(header, BODY, NOW, 300) is HeaderCheck.OK


def test_header_check_accepts_a_retired_key() -> None:
    """A header signed with a retired key is accepted."""
    header = Keyring.from_secrets(OLD_KEY).sign_header(BODY, NOW)
    keyring = Keyring.from_secrets(KEY, [OLD_KEY])
    assert keyring.check_header(header, BODY, NOW, 300) is HeaderCheck.OK


def test_header_with_several_v1_entries_needs_one_match() -> None:
    """With several v1 entries (rotation), one matching entry suffices, wherever it is."""
    good = _mac(KEY, f"{NOW}.".encode() + BODY)
    wrong = _mac("another-key-that-does-not-match-anything", f"{NOW}.".encode() + BODY)
    keyring = Keyring.from_secrets(KEY)
    for header in (
        f"t={NOW},v1={wrong},v1={good}",
        f"t={NOW},v1={good},v1={wrong}",
        f"v1={wrong}, v1={good}, t={NOW}",
        f"t={NOW},v0=abc,v1={good},x=y",
    ):
        assert keyring.check_header(header, BODY, NOW, 300) is HeaderCheck.OK, header
    assert keyring.check_header(f"t={NOW},v1={wrong},v1={wrong}", BODY, NOW, 300) is (
        HeaderCheck.BAD
    )


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "t=,v1=",
        f"t={NOW}",
        "v1=" + "a" * 64,
        f"t=abc,v1={'a' * 64}",
        f"t=-{NOW},v1={'a' * 64}",
        f"t={NOW},v1={'g' * 64}",
        f"t={NOW},v1={'a' * 63}",
        f"t=\u00b2,v1={'a' * 64}",  # a superscript digit: str.isdigit() says yes, int() says no
        f"t=\u0663\u0663,v1={'a' * 64}",  # Arabic-Indic digits
        f"t={NOW},v1={'é' * 64}",
        f"t={'9' * 40},v1={'a' * 64}",
        ",,,,=,=,",
    ],
)
def test_header_check_rejects_malformed_headers_without_raising(header: str) -> None:
    """A header that is not t=<digits>,v1=<64 hex> is a bad signature, never an exception."""
    assert Keyring.from_secrets(KEY).check_header(header, BODY, NOW, 300) is HeaderCheck.BAD


def test_a_keyring_copies_and_pickles_as_the_same_keys() -> None:
    """A keyring deep-copied or pickled (as before its keyed HMACs) signs and verifies as the
    original does."""
    keyring = Keyring.from_secrets(KEY, [OLD_KEY])
    for again in (copy.deepcopy(keyring), pickle.loads(pickle.dumps(keyring))):
        assert again == keyring
        assert again.sign(BODY) == keyring.sign(BODY)
        assert again.verify(BODY, Keyring.from_secrets(OLD_KEY).sign(BODY))
