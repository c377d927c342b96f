"""The agent console: the team's board, the queue, transfers, canned text."""

from __future__ import annotations

import pytest
from playwright.sync_api import WebSocketRoute, expect

from tests.browser.conftest import TIMEOUT_MS, Session
from tests.browser.people import Agent, Customer

pytestmark = pytest.mark.browser


def test_second_agent_going_away_updates_the_first_agents_board(
    session: Session,
) -> None:
    alice = Agent(session.page()).log_in("alice")
    expect(alice.board_row("Bob Okafor")).to_contain_text("Offline")

    bob = Agent(session.page()).log_in("bob")
    expect(alice.board_row("Bob Okafor")).to_contain_text("Online")

    bob.set_status("away")
    expect(alice.board_row("Bob Okafor")).to_contain_text("Away")
    expect(bob.board_row("Bob Okafor (you)")).to_contain_text("Away")

    bob.set_status("online")
    expect(alice.board_row("Bob Okafor")).to_contain_text("Online")

    bob.page.get_by_role("button", name="Log out").click()
    expect(bob.page.get_by_role("heading", name="Agent sign-in")).to_be_visible()
    expect(alice.board_row("Bob Okafor")).to_contain_text("Offline")


@pytest.fixture
def server_env() -> dict[str, str]:
    # One chat per agent, so that a second customer has to queue.
    return {"SWITCHBOARD_AGENT_CAPACITY": "1"}


def test_queued_chat_is_taken_closed_and_transferred(session: Session) -> None:
    alice = Agent(session.page()).log_in("alice")
    bob = Agent(session.page()).log_in("bob")
    bob.set_status("away")
    expect(alice.board_row("Bob Okafor")).to_contain_text("Away")

    first = Customer(session.page()).visit()
    first.start_chat(name="Fiona First", email="fiona@example.com")
    first.send("I was here first")
    expect(first.status).to_have_text("You're chatting with Alice Martin.")

    # Alice is full and Bob away: the second customer waits in the queue.
    second = Customer(session.page()).visit()
    second.start_chat(name="Sam Second", email="sam@example.com")
    second.send("Hello?")
    expect(second.status).to_contain_text("number 1 in the queue")
    expect(alice.queue).to_contain_text("Sam Second")
    expect(alice.page.locator("#queue-count")).to_have_text("(1)")

    # Bob takes it although he is away; it opens on his screen.
    bob.page.get_by_role("button", name="Take the chat with Sam Second").click()
    expect(bob.page.locator("#conversation-title")).to_have_text("Sam Second")
    expect(bob.message("Hello?")).to_be_visible()
    expect(second.status).to_have_text("You're chatting with Bob Okafor.")
    expect(alice.queue).to_contain_text("Nobody is waiting.")

    # Alice closes her chat, then Bob hands his over to her.
    alice.open_chat("Fiona First")
    alice.page.get_by_role("button", name="Close chat").click()
    expect(alice.state).to_have_text("Closed")
    expect(alice.composer).to_be_disabled()
    expect(first.status).to_contain_text("This chat was closed")

    transfer_to = bob.page.get_by_label("Transfer to")
    transfer_to.select_option(label="Alice Martin (0/1, online)")
    bob.page.get_by_role("button", name="Transfer", exact=True).click()
    expect(second.status).to_have_text("You're chatting with Alice Martin.")
    expect(bob.state).to_have_text("Open · assigned to Alice Martin")
    expect(bob.composer).to_be_disabled()
    alice.open_chat("Sam Second")
    alice.reply("Alice here, I'll help you from now on.")
    expect(second.message("Alice here")).to_be_visible()


def test_agent_reopens_a_closed_chat_and_the_customer_chats_on(
    session: Session,
) -> None:
    alice = Agent(session.page()).log_in("alice")
    customer = Customer(session.page()).visit()
    customer.start_chat(name="Rita Return", email="rita@example.com")
    customer.send("My parcel never came")
    alice.open_chat("Rita Return")
    alice.reply("It is on its way")
    expect(customer.message("It is on its way")).to_be_visible()

    alice.page.get_by_role("button", name="Close chat").click()
    expect(alice.state).to_have_text("Closed")
    expect(alice.composer).to_be_disabled()
    expect(customer.status).to_contain_text("This chat was closed")

    # Reopened from the console: the chat is Alice's again on both sides.
    reopen = alice.page.get_by_role("button", name="Reopen chat")
    reopen.click()
    expect(alice.state).to_have_text("Open · assigned to you")
    expect(reopen).to_have_count(0)
    expect(customer.status).to_have_text("You're chatting with Alice Martin.")

    alice.reply("Sorry, it was lost. A new one ships today.")
    expect(customer.message("A new one ships today.")).to_be_visible()
    customer.send("Thank you!")
    expect(alice.message("Thank you!")).to_be_visible()
    assert customer.texts() == [
        "My parcel never came",
        "It is on its way",
        "Sorry, it was lost. A new one ships today.",
        "Thank you!",
    ]


def test_canned_responses_are_created_inserted_edited_and_deleted(
    session: Session,
) -> None:
    agent = Agent(session.page()).log_in("carol")
    customer = Customer(session.page()).visit()
    customer.start_chat()
    customer.send("How fast do you ship?")
    agent.open_chat("Vera Visitor")

    page = agent.page
    page.get_by_label("Shortcut").fill("ship")
    page.get_by_label("Text").fill("We ship within two working days.")
    page.get_by_role("button", name="Add response").click()
    expect(page.locator("#canned-list")).to_contain_text("/ship")

    # Typing "/sh" offers it; Enter puts its text in place.
    agent.composer.press_sequentially("Good question! /sh", delay=20)
    expect(page.locator("#canned-suggestions").get_by_role("option")).to_have_count(1)
    agent.composer.press("Enter")
    expect(agent.composer).to_have_value(
        "Good question! We ship within two working days."
    )
    agent.composer.press("Enter")
    expect(customer.message("We ship within two working days.")).to_be_visible()

    page.get_by_role("button", name="Edit /ship").click()
    page.get_by_label("Text").fill("We ship the same day.")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#canned-list")).to_contain_text("We ship the same day.")
    agent.composer.fill("/ship")
    agent.composer.press("Tab")
    expect(agent.composer).to_have_value("We ship the same day.")

    page.get_by_role("button", name="Delete /ship").click()
    expect(page.locator("#canned-list")).to_have_text("None yet.")
    agent.composer.fill("/ship")
    expect(page.locator("#canned-suggestions").get_by_role("option")).to_have_count(0)


def test_backoff_is_full_jitter_under_the_cap(session: Session) -> None:
    page = session.page()
    page.goto("/console")
    delays = page.evaluate(
        """async () => {
            const { backoffDelay } = await import("/static/js/lib/backoff.js");
            const top = () => 0.999999;
            const options = { base: 500, cap: 30000 };
            return {
                first: backoffDelay(0, { ...options, random: top }),
                third: backoffDelay(2, { ...options, random: top }),
                late: backoffDelay(40, { ...options, random: top }),
                low: backoffDelay(40, { ...options, random: () => 0 }),
                spread: Array.from({ length: 200 }, () => backoffDelay(10, options)),
            };
        }"""
    )
    assert 499 < delays["first"] < 500
    assert 1999 < delays["third"] < 2000
    assert 29999 < delays["late"] < 30000
    assert delays["low"] == 0
    assert all(0 <= d < 30000 for d in delays["spread"])
    assert min(delays["spread"]) < 10000 < max(delays["spread"])


def test_timeline_orders_dedupes_and_finds_gaps(session: Session) -> None:
    page = session.page()
    page.goto("/console")
    found = page.evaluate(
        """async () => {
            const { Timeline } = await import("/static/js/lib/timeline.js");
            const t = new Timeline(7);
            const m = (seq) => ({ seq, client_id: `c${seq}`, sender: "c:1" });
            const added = [t.add(m(1)), t.add(m(2)), t.add(m(2))];
            t.add(m(4));
            const gap = { last: t.last, hasGap: t.hasGap };
            t.add(m(3));
            return {
                added, gap, last: t.last, hasGap: t.hasGap,
                order: t.ordered().map((x) => x.seq),
            };
        }"""
    )
    assert found["added"] == [True, True, False]
    assert found["gap"] == {"last": 2, "hasGap": True}
    assert found["last"] == 4
    assert found["hasGap"] is False
    assert found["order"] == [1, 2, 3, 4]


def test_a_resync_from_the_server_fetches_what_the_open_chat_lost(
    session: Session,
) -> None:
    page = session.page()
    routes: list[WebSocketRoute] = []
    dropped: list[str] = []

    # The agent's page misses one message frame, as when its server's
    # backplane was down; nothing comes after it to show the gap.
    def lossy(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        routes.append(ws)

        def to_page(frame: str | bytes) -> None:
            text = frame if isinstance(frame, str) else frame.decode()
            if not dropped and '"type":"message"' in text and "Lost on the way" in text:
                dropped.append(text)
                return
            ws.send(frame)

        server.on_message(to_page)

    page.route_web_socket("**/ws", lossy)
    agent = Agent(page).log_in("alice")
    customer = Customer(session.page()).visit()
    customer.start_chat()
    customer.send("Are you there?")
    agent.open_chat("Vera Visitor")
    expect(agent.message("Are you there?")).to_be_visible()
    customer.send("Lost on the way")
    for _ in range(TIMEOUT_MS // 50):
        if dropped:
            break
        page.wait_for_timeout(50)
    assert dropped
    expect(agent.message("Lost on the way")).to_have_count(0)

    # The server says it may have lost frames: the open chat joins again.
    routes[-1].send('{"type":"resync"}')
    expect(agent.message("Lost on the way")).to_be_visible()
    assert agent.texts() == ["Are you there?", "Lost on the way"]
