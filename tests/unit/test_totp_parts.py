"""The pure parts of TOTP: the sealed secret, the drift window, the backup codes' form."""

from __future__ import annotations

import base64

import pyotp

from bastion.auth._backup_codes import ALPHABET, new_code, normalise
from bastion.auth._secretbox import SecretBox
from bastion.auth._totp import matching_step, new_enrolment

KEY = b"a secret key of the kind SECRET_KEY holds, long enough"


def test_a_sealed_secret_opens_only_for_its_owner_under_its_key_and_purpose() -> None:
    box = SecretBox(KEY, "totp-secret")
    sealed = box.seal(b"JBSWY3DPEHPK3PXP", "7")
    assert b"JBSWY3DPEHPK3PXP".decode() not in sealed
    assert box.open(sealed, "7") == b"JBSWY3DPEHPK3PXP"
    assert box.seal(b"JBSWY3DPEHPK3PXP", "7") != sealed  # a fresh nonce each time
    assert box.open(sealed, "8") is None  # moved to another account's row
    assert SecretBox(KEY + b"!", "totp-secret").open(sealed, "7") is None  # SECRET_KEY rotated
    assert SecretBox(KEY, "another-purpose").open(sealed, "7") is None
    raw = bytearray(base64.urlsafe_b64decode(sealed[3:]))
    for index in (0, 12, len(raw) - 1):  # the nonce, the ciphertext, the tag
        flipped = bytearray(raw)
        flipped[index] ^= 1
        assert box.open("v1." + base64.urlsafe_b64encode(flipped).decode(), "7") is None
    for damaged in ("", "v1.", "v1.!!!", "v2." + sealed[3:], sealed[:10]):
        assert box.open(damaged, "7") is None


def test_one_step_of_drift_either_way_and_no_more() -> None:
    secret = pyotp.random_base32()
    totp = pyotp.TOTP(secret)
    now = 1_800_000_015.0  # the middle of step 60_000_000
    step = int(now) // 30
    for offset in (-1, 0, 1):
        assert matching_step(secret, totp.generate_otp(step + offset), now) == step + offset
    window = {totp.generate_otp(step + offset) for offset in (-1, 0, 1)}
    for offset in (-3, -2, 2, 3):
        far = totp.generate_otp(step + offset)
        if far not in window:
            assert matching_step(secret, far, now) is None
    spaced = totp.generate_otp(step)
    assert matching_step(secret, f" {spaced[:3]} {spaced[3:]} ", now) == step
    for malformed in ("", "12345", "1234567", "abcdef", "١٢٣٤٥٦"):
        assert matching_step(secret, malformed, now) is None


def test_backup_codes_have_their_form_and_are_read_forgivingly() -> None:
    codes = {new_code() for _ in range(200)}
    assert len(codes) == 200
    for one in codes:
        assert len(one) == 11
        assert one[5] == "-"
        assert set(one.replace("-", "")) <= set(ALPHABET)
    assert not set("01ilo") & set(ALPHABET)
    assert normalise("ABCDE-FGHJK") == normalise("abcdefghjk") == "abcdefghjk"
    assert normalise(" abcde fghjk ") == "abcdefghjk"
    for wrong in ("abcde-fghj", "abcde-fghjkm", "abcde-fghi1", ""):
        assert normalise(wrong) is None


def test_the_qr_code_is_an_svg_of_the_uri_and_nothing_else() -> None:
    enrolment = new_enrolment('<script>alert(1)</script>"@example.com', "<b>site</b>")
    assert enrolment.qr_svg.startswith("<svg")
    assert "<script" not in enrolment.qr_svg
    assert "<b>" not in enrolment.qr_svg
    assert "%3Cscript%3E" in enrolment.otpauth_uri
