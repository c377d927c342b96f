"""The address book contract, run against every implementation."""

from __future__ import annotations

import asyncio

from switchboard.addressbook import AddressBook, make_address, server_of
from tests.addressbook.conftest import BookFactory
from tests.backplane.support import UNIT

TTL = 50 * UNIT  # long enough never to expire during a test


def test_address_names_its_server_and_connection() -> None:
    address = make_address("s1", "c1")

    assert address == "s1/c1"
    assert server_of(address) == "s1"


async def test_added_address_is_found_by_lookup(book: AddressBook) -> None:
    assert await book.add("alice", "s1/c1", TTL) == []

    assert await book.lookup(["alice"]) == {"alice": ["s1/c1"]}


async def test_user_without_addresses_maps_to_an_empty_list(book: AddressBook) -> None:
    assert await book.lookup(["nobody"]) == {"nobody": []}


async def test_lookup_of_no_users_is_empty(book: AddressBook) -> None:
    assert await book.lookup([]) == {}


async def test_every_tab_of_a_user_has_its_own_address(book: AddressBook) -> None:
    for connection in ("c1", "c2", "c3"):
        await book.add("alice", f"s1/{connection}", TTL)

    found = await book.lookup(["alice"])

    assert sorted(found["alice"]) == ["s1/c1", "s1/c2", "s1/c3"]


async def test_lookup_answers_for_each_user_once(book: AddressBook) -> None:
    await book.add("alice", "s1/c1", TTL)
    await book.add("bob", "s1/c2", TTL)

    found = await book.lookup(["alice", "bob", "carol", "alice"])

    assert found == {"alice": ["s1/c1"], "bob": ["s1/c2"], "carol": []}


async def test_removed_address_is_not_found(book: AddressBook) -> None:
    await book.add("alice", "s1/c1", TTL)
    await book.add("alice", "s1/c2", TTL)

    await book.remove("alice", "s1/c1")

    assert await book.lookup(["alice"]) == {"alice": ["s1/c2"]}


async def test_removing_an_unknown_address_is_harmless(book: AddressBook) -> None:
    await book.remove("nobody", "s1/c1")

    assert await book.lookup(["nobody"]) == {"nobody": []}


async def test_address_expires_after_its_ttl(book: AddressBook) -> None:
    await book.add("alice", "s1/short", UNIT)
    await book.add("alice", "s1/long", TTL)

    await asyncio.sleep(3 * UNIT)

    assert await book.lookup(["alice"]) == {"alice": ["s1/long"]}


async def test_refresh_pushes_expiry_forward(book: AddressBook) -> None:
    await book.add("alice", "s1/c1", 3 * UNIT)
    await asyncio.sleep(UNIT)

    await book.refresh({"alice": ["s1/c1"]}, 6 * UNIT)
    # Past the first expiry (3 units), well before the new one (7 units).
    await asyncio.sleep(4 * UNIT)

    assert await book.lookup(["alice"]) == {"alice": ["s1/c1"]}


async def test_refresh_never_resurrects_a_removed_address(book: AddressBook) -> None:
    await book.add("alice", "s1/c1", TTL)
    await book.remove("alice", "s1/c1")

    await book.refresh({"alice": ["s1/c1"]}, TTL)

    assert await book.lookup(["alice"]) == {"alice": []}


async def test_refresh_never_revives_an_expired_address(book: AddressBook) -> None:
    await book.add("alice", "s1/c1", UNIT)
    await asyncio.sleep(3 * UNIT)

    # No lookup pruned it in between; it must stay gone all the same.
    await book.refresh({"alice": ["s1/c1"]}, TTL)

    assert await book.lookup(["alice"]) == {"alice": []}


async def test_refresh_creates_nothing_for_unknown_users(book: AddressBook) -> None:
    await book.refresh({"nobody": ["s1/c1"], "empty": []}, TTL)

    assert await book.lookup(["nobody", "empty"]) == {"nobody": [], "empty": []}


async def test_refresh_of_nothing_is_harmless(book: AddressBook) -> None:
    await book.add("alice", "s1/c1", TTL)

    await book.refresh({}, TTL)

    assert await book.lookup(["alice"]) == {"alice": ["s1/c1"]}


async def test_refresh_of_a_live_server_reports_no_lapse(book: AddressBook) -> None:
    await book.add("alice", "s1/c1", TTL)

    assert await book.refresh({"alice": ["s1/c1"]}, TTL) is False
    assert await book.refresh({}, TTL) is False


async def test_add_many_adds_every_address_of_every_user(book: AddressBook) -> None:
    entries = {"alice": ["s1/c1", "s1/c2"], "bob": ["s1/c3"], "carol": []}

    assert await book.add_many(entries, TTL) == []

    found = await book.lookup(["alice", "bob", "carol"])
    assert sorted(found["alice"]) == ["s1/c1", "s1/c2"]
    assert found["bob"] == ["s1/c3"]
    assert found["carol"] == []


async def test_add_many_of_nothing_is_harmless(book: AddressBook) -> None:
    assert await book.add_many({}, TTL) == []
    assert await book.add_many({"alice": []}, TTL) == []

    assert await book.lookup(["alice"]) == {"alice": []}


async def test_add_many_pushes_the_expiry_of_known_addresses(book: AddressBook) -> None:
    await book.add("alice", "s1/c1", UNIT)

    await book.add_many({"alice": ["s1/c1"]}, TTL)
    await asyncio.sleep(3 * UNIT)

    assert await book.lookup(["alice"]) == {"alice": ["s1/c1"]}


async def test_add_many_returns_what_the_cap_dropped_for_every_user(
    make_book: BookFactory,
) -> None:
    book = await make_book(max_per_user=2)
    await book.add("alice", "s1/old", TTL)
    await book.add("bob", "s1/old", TTL)

    dropped = await book.add_many(
        {"alice": ["s1/a1", "s1/a2"], "bob": ["s1/b1"], "carol": ["s1/c1"]}, TTL
    )

    assert dropped == ["s1/old"]
    found = await book.lookup(["alice", "bob", "carol"])
    assert sorted(found["alice"]) == ["s1/a1", "s1/a2"]
    assert sorted(found["bob"]) == ["s1/b1", "s1/old"]
    assert found["carol"] == ["s1/c1"]


async def test_add_many_keeps_the_last_of_too_many_new_addresses(
    make_book: BookFactory,
) -> None:
    book = await make_book(max_per_user=2)

    dropped = await book.add_many({"alice": ["s1/c1", "s1/c2", "s1/c3"]}, TTL)

    assert dropped == ["s1/c1"]
    found = await book.lookup(["alice"])
    assert sorted(found["alice"]) == ["s1/c2", "s1/c3"]


async def test_add_many_counts_a_repeated_address_once(
    make_book: BookFactory,
) -> None:
    book = await make_book(max_per_user=1)

    assert await book.add_many({"alice": ["s1/c1", "s1/c1"]}, TTL) == []
    assert await book.lookup(["alice"]) == {"alice": ["s1/c1"]}


async def test_adding_beyond_the_cap_drops_the_oldest(make_book: BookFactory) -> None:
    book = await make_book(max_per_user=3)
    for connection in ("c1", "c2", "c3"):
        assert await book.add("alice", f"s1/{connection}", TTL) == []

    dropped = await book.add("alice", "s1/c4", TTL)

    assert dropped == ["s1/c1"]
    found = await book.lookup(["alice"])
    assert sorted(found["alice"]) == ["s1/c2", "s1/c3", "s1/c4"]


async def test_cap_drops_the_soonest_expiring_first(make_book: BookFactory) -> None:
    book = await make_book(max_per_user=2)
    await book.add("alice", "s1/c1", TTL)
    await book.add("alice", "s1/c2", 2 * TTL)

    dropped = await book.add("alice", "s1/c3", 3 * TTL)

    assert dropped == ["s1/c1"]


async def test_cap_never_drops_the_address_being_added(make_book: BookFactory) -> None:
    book = await make_book(max_per_user=2)
    await book.add("alice", "s1/c1", 2 * TTL)
    await book.add("alice", "s1/c2", 2 * TTL)

    dropped = await book.add("alice", "s1/c3", TTL)

    assert dropped == ["s1/c1"]
    found = await book.lookup(["alice"])
    assert sorted(found["alice"]) == ["s1/c2", "s1/c3"]


async def test_adding_an_address_again_does_not_count_twice(
    make_book: BookFactory,
) -> None:
    book = await make_book(max_per_user=2)
    await book.add("alice", "s1/c1", TTL)
    await book.add("alice", "s1/c2", TTL)

    assert await book.add("alice", "s1/c2", TTL) == []
    assert await book.add("alice", "s1/c1", TTL) == []


async def test_expired_addresses_do_not_count_against_the_cap(
    make_book: BookFactory,
) -> None:
    book = await make_book(max_per_user=2)
    await book.add("alice", "s1/c1", UNIT)
    await book.add("alice", "s1/c2", UNIT)
    await asyncio.sleep(3 * UNIT)

    assert await book.add("alice", "s1/c3", TTL) == []
    assert await book.add("alice", "s1/c4", TTL) == []


async def test_cap_applies_to_each_user_alone(make_book: BookFactory) -> None:
    book = await make_book(max_per_user=1)

    assert await book.add("alice", "s1/c1", TTL) == []
    assert await book.add("bob", "s1/c2", TTL) == []
