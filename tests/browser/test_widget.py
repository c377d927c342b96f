"""The widget on its own: resuming, tabs, leaving a message, reconnecting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, WebSocket, WebSocketRoute, expect

from tests.browser.conftest import TIMEOUT_MS, DemoServer, Session
from tests.browser.people import Agent, Customer

pytestmark = pytest.mark.browser


def test_reload_resumes_the_same_conversation_with_its_history(
    session: Session,
) -> None:
    agent = Agent(session.page()).log_in("alice")
    customer = Customer(session.page()).visit()
    customer.start_chat()
    customer.send("First question")
    agent.open_chat("Vera Visitor")
    agent.reply("First answer")
    expect(customer.message("First answer")).to_be_visible()

    customer.page.reload()

    # The panel was open, so it opens again, with the whole history.
    expect(customer.panel).to_be_visible()
    expect(customer.message("First question")).to_be_visible()
    expect(customer.message("First answer")).to_be_visible()
    expect(customer.status).to_have_text("You're chatting with Alice Martin.")
    customer.send("Second question")

    expect(agent.message("Second question")).to_be_visible()
    expect(agent.chat_list.locator(".cs-chat")).to_have_count(1)
    assert agent.texts() == ["First question", "First answer", "Second question"]
    assert customer.texts() == ["First question", "First answer", "Second question"]


def test_two_customer_tabs_and_two_agent_tabs_stay_in_sync(session: Session) -> None:
    agent_context = session.context()
    agent = Agent(agent_context.new_page()).log_in("alice")
    agent_too = Agent(agent_context.new_page())
    agent_too.page.goto("/console")
    agent_too.wait_connected()

    customer_context = session.context()
    customer = Customer(customer_context.new_page()).visit()
    customer_too = Customer(customer_context.new_page()).visit()

    # Opening the panel in one tab opens it in the other.
    customer.start_chat()
    expect(customer_too.panel).to_be_visible()
    customer.send("Sent from the first tab")
    expect(customer_too.message("Sent from the first tab")).to_be_visible()
    customer_too.send("Sent from the second tab")
    expect(customer.message("Sent from the second tab")).to_be_visible()

    # Both agent tabs see the chat; a reply from one shows in the other.
    agent.open_chat("Vera Visitor")
    agent_too.open_chat("Vera Visitor")
    agent.reply("Reply from agent tab one")
    expect(agent_too.message("Reply from agent tab one")).to_be_visible()
    expect(customer.message("Reply from agent tab one")).to_be_visible()
    expect(customer_too.message("Reply from agent tab one")).to_be_visible()

    # Reading in one tab clears the unread count in the other.
    agent_too.page.locator("#conversation-title").click()
    customer.send("Anyone there?")
    expect(agent_too.message("Anyone there?")).to_be_visible()
    expect(agent.message("Anyone there?")).to_be_visible()
    expect(agent.chat("Vera Visitor").locator(".cs-unread")).to_have_count(0)
    expect(agent_too.chat("Vera Visitor").locator(".cs-unread")).to_have_count(0)

    # The agent's status follows in both tabs.
    agent.set_status("away")
    expect(agent_too.page.get_by_label("Status")).to_have_value("away")
    expect(agent_too.board_row("Alice Martin")).to_contain_text("Away")

    # Closing the panel in the second tab closes it in the first.
    customer_too.page.get_by_role("button", name="Close chat").click()
    expect(customer.panel).to_be_hidden()
    expect(customer_too.launcher).to_be_focused()

    assert customer.texts() == customer_too.texts()


def test_left_message_reaches_the_console_when_an_agent_logs_in(
    session: Session,
) -> None:
    customer = Customer(session.page()).visit()
    customer.launcher.click()

    # No agent online: a form to leave a message, not a chat nobody reads.
    expect(
        customer.page.get_by_text("No one is available to chat right now")
    ).to_be_visible()
    customer.page.get_by_label("Name").fill("Olga Offline")
    customer.page.get_by_label("Email").fill("olga@example.com")
    customer.page.get_by_label("Message").fill("Please call me back about order SO-1.")
    customer.page.get_by_role("button", name="Send message").click()
    expect(customer.widget.get_by_text("Thank you!")).to_be_visible()

    agent = Agent(session.page()).log_in("bob")
    left = agent.page.locator("#left-messages .cs-left-message")
    expect(left).to_have_count(1)
    expect(left).to_contain_text("Olga Offline")
    expect(left).to_contain_text("Please call me back about order SO-1.")

    agent.page.get_by_role(
        "button", name="Mark the message from Olga Offline as handled"
    ).click()
    expect(left).to_have_count(0)
    expect(agent.page.locator("#left-messages")).to_have_text("No messages waiting.")


def test_widget_recovers_after_a_server_restart_without_losing_or_doubling(
    session: Session, server: DemoServer
) -> None:
    agent = Agent(session.page()).log_in("alice")
    customer = Customer(session.page()).visit()
    customer.start_chat()
    customer.send("Before the restart")
    agent.open_chat("Vera Visitor")
    agent.reply("Answer before the restart")
    expect(customer.message("Answer before the restart")).to_be_visible()

    server.stop()
    expect(customer.banner).to_have_text("Reconnecting…")
    expect(agent.connection).to_have_text("Reconnecting…")

    # Written while the server is down: kept, shown as sending.
    customer.send("Written during the outage")
    pending = customer.message("Written during the outage").locator(".sb-msg__status")
    expect(pending).to_have_text("Sending…")

    server.start()
    # Backoff may wait a while after several failed attempts.
    slow = TIMEOUT_MS * 3
    expect(customer.banner).to_be_hidden(timeout=slow)
    expect(pending).to_have_text("Read", timeout=slow)
    expect(agent.connection).to_have_text("Connected", timeout=slow)
    expect(agent.message("Written during the outage")).to_be_visible()

    agent.reply("Answer after the restart")
    expect(customer.message("Answer after the restart")).to_be_visible()
    customer.send("Thanks")
    expect(agent.message("Thanks")).to_be_visible()

    expected = [
        "Before the restart",
        "Answer before the restart",
        "Written during the outage",
        "Answer after the restart",
        "Thanks",
    ]
    assert customer.texts() == expected
    assert agent.texts() == expected
    seqs = customer.messages.evaluate_all("items => items.map(i => i.dataset.seq)")
    assert seqs == ["1", "2", "3", "4", "5"]


def test_a_lost_message_is_fetched_again_when_the_next_one_arrives(
    session: Session,
) -> None:
    agent = Agent(session.page()).log_in("alice")
    page = session.page()
    dropped: list[str] = []

    # Between the server and the customer's page, lose one message frame.
    def lossy(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def to_page(frame: str | bytes) -> None:
            text = frame if isinstance(frame, str) else frame.decode()
            if not dropped and '"type":"message"' in text and "Lost on the way" in text:
                dropped.append(text)
                return
            ws.send(frame)

        server.on_message(to_page)

    page.route_web_socket("**/ws", lossy)
    customer = Customer(page).visit()
    customer.start_chat()
    customer.send("Are you there?")
    agent.open_chat("Vera Visitor")
    agent.reply("Lost on the way")
    agent.reply("Arrives fine")

    # The next message shows the gap; the widget asks for what it missed.
    expect(customer.message("Arrives fine")).to_be_visible()
    expect(customer.message("Lost on the way")).to_be_visible()
    assert len(dropped) == 1
    assert customer.texts() == ["Are you there?", "Lost on the way", "Arrives fine"]


def test_signed_in_customer_needs_no_form_and_the_agent_sees_their_orders(
    session: Session,
) -> None:
    agent = Agent(session.page()).log_in("alice")
    customer = Customer(session.page()).visit()
    customer.sign_in_as("Anna Schmidt")

    customer.launcher.click()
    expect(customer.composer).to_be_visible()
    expect(customer.page.get_by_role("button", name="Start chat")).to_have_count(0)
    customer.send("Where is my grinder?")

    agent.open_chat("Anna Schmidt")
    sidebar = agent.page.locator("#customer")
    expect(sidebar).to_contain_text("Signed-in customer · cust-1")
    expect(sidebar).to_contain_text("SO-10452")
    expect(sidebar).to_contain_text("processing")

    # A cart change reaches the sidebar while the chat goes on.
    customer.page.get_by_role(
        "button", name="Add Glass French Press 8 Cups to cart"
    ).click()
    expect(sidebar).to_contain_text(
        "1 \N{MULTIPLICATION SIGN} Glass French Press 8 Cups"
    )


def test_widget_fits_a_phone_screen(session: Session) -> None:
    Agent(session.page()).log_in("alice")
    customer = Customer(session.page(viewport={"width": 375, "height": 700})).visit()
    customer.start_chat()
    box = customer.panel.bounding_box()
    assert box is not None
    assert box["width"] == 375
    customer.send("Typed on a phone")
    customer.composer.press("Escape")
    expect(customer.panel).to_be_hidden()
    expect(customer.launcher).to_be_focused()


def test_a_resync_from_the_server_fetches_what_it_lost(session: Session) -> None:
    agent = Agent(session.page()).log_in("alice")
    page = session.page()
    routes: list[WebSocketRoute] = []
    dropped: list[str] = []

    # The customer's page misses one message frame, as when its server's
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
    customer = Customer(page).visit()
    customer.start_chat()
    customer.send("Are you there?")
    agent.open_chat("Vera Visitor")
    agent.reply("Lost on the way")
    for _ in range(TIMEOUT_MS // 50):
        if dropped:
            break
        page.wait_for_timeout(50)
    assert dropped
    expect(customer.message("Lost on the way")).to_have_count(0)

    # The server says it may have lost frames: the widget joins again.
    routes[-1].send('{"type":"resync"}')
    expect(customer.message("Lost on the way")).to_be_visible()
    assert customer.texts() == ["Are you there?", "Lost on the way"]


def received_frames(page: Page) -> list[str]:
    """Every WebSocket frame the page receives from now on, as text."""
    frames: list[str] = []

    def watch(ws: WebSocket) -> None:
        ws.on(
            "framereceived",
            lambda payload: frames.append(
                payload if isinstance(payload, str) else payload.decode()
            ),
        )

    page.on("websocket", watch)
    return frames


@pytest.mark.parametrize("server_env", [{"SWITCHBOARD_REQUIRE_PRECHAT": "true"}])
def test_required_prechat_refuses_to_start_without_name_and_email(
    session: Session,
) -> None:
    agent = Agent(session.page()).log_in("alice")
    page = session.page()
    frames = received_frames(page)
    customer = Customer(page).visit()
    customer.launcher.click()

    # The page embeds the widget with the default, optional form; the
    # server refuses a hello without the details, and the form comes back.
    start = page.get_by_role("button", name="Start chat")
    expect(page.get_by_label("Name (optional)")).to_be_visible()
    start.click()
    expect(customer.widget.get_by_role("alert")).to_have_text(
        "Please give your name and email to start a chat."
    )
    assert any('"code":"bad_frame"' in frame for frame in frames)
    assert not any('"type":"welcome"' in frame for frame in frames)

    # Required from now on: the browser keeps an empty form from going out.
    name = page.get_by_label("Name", exact=True)
    email = page.get_by_label("Email", exact=True)
    expect(name).to_have_attribute("required", "")
    start.click()
    expect(start).to_be_visible()
    expect(customer.composer).to_have_count(0)
    assert name.evaluate("input => input.validity.valueMissing")

    name.fill("Nina Named")
    email.fill("nina@example.com")
    start.click()
    customer.send("Now you know who I am")
    agent.open_chat("Nina Named")
    expect(agent.message("Now you know who I am")).to_be_visible()


def test_optional_prechat_starts_a_chat_with_empty_fields(session: Session) -> None:
    agent = Agent(session.page()).log_in("alice")
    page = session.page()
    frames = received_frames(page)
    customer = Customer(page).visit()
    customer.launcher.click()

    expect(page.get_by_label("Name (optional)")).to_have_value("")
    expect(page.get_by_label("Email (optional)")).to_have_value("")
    page.get_by_role("button", name="Start chat").click()
    customer.send("No names needed")

    expect(agent.chat_list.locator(".cs-chat")).to_have_count(1)
    agent.chat_list.locator(".cs-chat").click()
    expect(agent.message("No names needed")).to_be_visible()
    assert not any('"type":"error"' in frame for frame in frames)


def test_message_list_is_a_live_log_and_shows_delivered_before_read(
    session: Session,
) -> None:
    agent = Agent(session.page()).log_in("alice")
    customer = Customer(session.page()).visit()
    customer.start_chat()

    # A log region announces additions politely, the delivery state not.
    log = customer.widget.get_by_role("log", name="Chat messages")
    expect(log).to_have_attribute("aria-live", "polite")
    expect(log).to_have_attribute("aria-relevant", "additions")

    # Stored and acknowledged, not yet seen by the agent: delivered.
    customer.send("Is this delivered?")
    mine = customer.message("Is this delivered?")
    expect(mine).to_have_attribute("data-state", "delivered")
    expect(mine.locator(".sb-msg__status")).to_have_text("Delivered")
    expect(mine.locator(".sb-msg__status")).to_have_attribute("aria-live", "off")
    expect(log.locator(".sb-msg")).to_have_count(1)

    # The agent opens the chat, which reads it.
    agent.open_chat("Vera Visitor")
    expect(mine.locator(".sb-msg__status")).to_have_text("Read")


def readme_snippet() -> list[str]:
    """The attributes of the tag under "Embed the widget" in the README."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Embed the widget", 1)[1]
    tag = re.search(r"```html\n(<script.*?</script>)\n```", section, re.S)
    assert tag is not None
    unquoted = re.sub(r'"[^"]*"', '""', tag.group(1))
    return re.findall(r"\s([a-z-]+)(?==|\s|>)", unquoted)


def test_shop_embeds_the_widget_with_the_readme_snippet(session: Session) -> None:
    page = session.page()
    customer = Customer(page).visit()
    snippet = readme_snippet()
    assert snippet[:2] == ["src", "data-server"]
    assert snippet[-1] == "async"

    def embedded() -> dict[str, str]:
        found: dict[str, str] = page.locator('script[src$="/widget.js"]').evaluate(
            "s => Object.fromEntries([...s.attributes].map(a => [a.name, a.value]))"
        )
        return found

    # A guest gets the tag without a customer token, which is optional.
    tag = embedded()
    assert list(tag) == [name for name in snippet if name != "data-customer-token"]
    assert tag["data-server"] == server_origin(page)

    customer.sign_in_as("Anna Schmidt")
    tag = embedded()
    assert list(tag) == snippet
    assert tag["data-customer-token"]


def server_origin(page: Page) -> str:
    origin: str = page.evaluate("location.origin")
    return origin
