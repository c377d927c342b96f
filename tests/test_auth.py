"""Tokens: who each key can name."""

from __future__ import annotations

from itsdangerous import URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode

from switchboard.auth import TokenSigner, customer_token


def test_a_customer_token_names_the_shops_customer() -> None:
    signer = TokenSigner("server-secret", "shop-key")
    who = signer.verify(customer_token("shop-key", "cust-9", "Ann", "a@b.c"))
    assert who is not None
    assert (who.kind, who.external_id, who.name) == ("customer", "cust-9", "Ann")


def test_the_shops_key_cannot_mint_agent_tokens() -> None:
    signer = TokenSigner("server-secret", "shop-key")
    forged = TokenSigner("shop-key").agent(1)
    assert signer.verify(forged) is None


def test_with_a_customer_key_the_server_secret_no_longer_signs_customers() -> None:
    signer = TokenSigner("server-secret", "shop-key")
    assert signer.verify(customer_token("server-secret", "c", "n", "e")) is None


def test_tampered_and_foreign_tokens_are_refused() -> None:
    signer = TokenSigner("server-secret")
    token = signer.agent(3)
    assert signer.verify(token[:-2] + "xx") is None
    assert TokenSigner("other-secret").verify(token) is None
    assert signer.verify("") is None
    assert signer.verify(token) is not None


def test_a_well_signed_token_with_an_impossible_id_is_refused() -> None:
    signer = TokenSigner("server-secret")
    # Signed with the right key, so only the values can give them away.
    impossible = [
        signer.agent(2**80),
        signer.agent(0),
        signer.visitor(2**63),
        signer.visitor(True),
        signer.visitor("7"),  # type: ignore[arg-type]
    ]
    assert [signer.verify(token) for token in impossible] == [None] * 5
    assert signer.verify(signer.visitor(2**53)) is not None


def test_a_customer_token_needs_a_printable_id_and_profile() -> None:
    signer = TokenSigner("server-secret", "shop-key")
    refused = [
        customer_token("shop-key", "", "Ann", "a@b.c"),
        customer_token("shop-key", " ", "Ann", "a@b.c"),
        customer_token("shop-key", "cust-\x00", "Ann", "a@b.c"),
        customer_token("shop-key", "cust-1", "Ann\x1b[2J", "a@b.c"),
        customer_token("shop-key", {"x": 1}, "Ann", "a@b.c"),  # type: ignore[arg-type]
    ]
    assert [signer.verify(token) for token in refused] == [None] * 5


def test_a_customer_token_takes_what_shops_commonly_send() -> None:
    signer = TokenSigner("server-secret", "shop-key")
    # A numeric id, a missing email, and a name with a stray newline.
    token = customer_token(
        "shop-key",
        1042,  # type: ignore[arg-type]
        "Ann Smith\n",
        None,  # type: ignore[arg-type]
    )
    who = signer.verify(token)
    assert who is not None
    assert (who.external_id, who.name, who.email) == ("1042", "Ann Smith", "")


def test_customer_ids_are_never_cut_short_or_out_of_range() -> None:
    signer = TokenSigner("server-secret", "shop-key")
    # Two ids alike in their first 200 characters must not name one
    # customer, so a longer id is refused rather than cut.
    refused = [
        customer_token("shop-key", "A" * 200 + "-one", "One", ""),
        customer_token("shop-key", 2**200, "Big", ""),  # type: ignore[arg-type]
    ]
    assert [signer.verify(token) for token in refused] == [None] * 2
    kept = signer.verify(customer_token("shop-key", "A" * 200, "Max", ""))
    assert kept is not None and kept.external_id == "A" * 200


def test_a_well_signed_payload_that_no_record_can_hold_is_refused() -> None:
    key = "shop-key"
    signer = TokenSigner("server-secret", key)
    raw = URLSafeTimedSerializer(key, salt="switchboard.customer").make_signer(
        "switchboard.customer"
    )

    def signed(payload: bytes) -> str:
        return raw.sign(base64_encode(payload)).decode()

    payloads = [
        b"{{{",  # not JSON at all
        b'{"id": "e-9", "name": "\\ud800"}',  # a lone surrogate
        b'{"id": ' + b"1" * 5000 + b"}",  # past Python's digit limit
        b"[" * 100_000,  # nested past the recursion limit
    ]
    assert [signer.verify(signed(p)) for p in payloads] == [None] * 4
    assert signer.verify(signed(b'{"id": "e-9", "name": "Eve"}')) is not None
