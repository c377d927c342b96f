"""A customer and an agent chat through the widget and the console.

The first test also takes the README's screenshots; run it with
``SWITCHBOARD_UPDATE_SCREENSHOTS=1`` to copy them to ``docs/screenshots/``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Session
from tests.browser.people import Agent, Customer
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.browser

SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"


def test_customer_and_agent_chat_both_ways_with_typing_and_read_state(
    session: Session, shot: Callable[[Page, str], Path]
) -> None:
    agent = Agent(session.page(viewport={"width": 1360, "height": 860})).log_in("alice")
    customer = Customer(session.page(viewport={"width": 1280, "height": 860})).visit()
    customer.page.get_by_role("button", name="Add Burr Coffee Grinder to cart").click()

    # The customer writes first: the chat is assigned, the agent is told.
    customer.start_chat()
    customer.send("Hello! Does the grinder fit a small kitchen?")
    expect(customer.status).to_have_text("You're chatting with Alice Martin.")
    expect(agent.chat("Vera Visitor").locator(".cs-unread")).to_have_text("1")
    expect(agent.page).to_have_title("(1) Switchboard console")

    # Opening the chat reads it: the customer sees "Read".
    agent.open_chat("Vera Visitor")
    expect(agent.message("Does the grinder fit")).to_be_visible()
    expect(
        customer.message("Does the grinder fit").locator(".sb-msg__status")
    ).to_have_text("Read")
    expect(agent.page).to_have_title("Switchboard console")

    # Typing shows on the other side, both ways.
    agent.composer.press_sequentially("It is only 13 cm wide", delay=30)
    expect(customer.typing).to_have_text("Alice Martin is typing…")
    agent.composer.press("Enter")
    expect(customer.message("It is only 13 cm wide")).to_be_visible()
    expect(customer.typing).to_have_text("")

    customer.composer.press_sequentially("Perfect", delay=30)
    expect(agent.typing).to_have_text("Vera Visitor is typing…")
    customer.composer.press("Enter")
    expect(agent.message("Perfect")).to_be_visible()

    # The widget's panel is open and visible, so the reply counts as read.
    expect(agent.message("13 cm").locator(".sb-msg__status")).to_have_text("Read")
    expect(agent.message("Perfect")).to_be_visible()

    # The sidebar shows the visitor, the page and the cart.
    sidebar = agent.page.locator("#customer")
    expect(sidebar).to_contain_text("Anonymous visitor")
    expect(sidebar).to_contain_text("vera@example.com")
    expect(sidebar).to_contain_text("1 \N{MULTIPLICATION SIGN} Burr Coffee Grinder")
    expect(sidebar.get_by_role("link")).to_have_text(re.compile("Larkspur"))

    _screenshots(agent, customer, shot)


def _screenshots(
    agent: Agent, customer: Customer, shot: Callable[[Page, str], Path]
) -> None:
    # Two pictures for the README, with a product card in the chat.
    agent.page.get_by_label("Search by name or SKU").fill("filters")
    agent.page.get_by_role(
        "button", name="Send Paper Filters Size 02 (100) to the customer"
    ).click()
    expect(customer.widget.locator(".sb-product")).to_be_visible()
    expect(agent.message("Paper Filters").locator(".sb-msg__status")).to_have_text(
        "Read"
    )
    customer.composer.blur()
    customer_png = shot(customer.page, "widget")
    agent_png = shot(agent.page, "console")

    # The committed copies change only on request, so that running the
    # tests never leaves the working tree modified.
    if os.environ.get("SWITCHBOARD_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(customer_png, SCREENSHOTS / "widget.png")
        shutil.copyfile(agent_png, SCREENSHOTS / "console.png")


def test_agent_sends_a_product_card_the_customer_sees(session: Session) -> None:
    agent = Agent(session.page()).log_in("alice")
    customer = Customer(session.page()).visit()
    customer.start_chat()
    customer.send("Which grinder do you recommend?")
    agent.open_chat("Vera Visitor")

    agent.page.get_by_label("Search by name or SKU").fill("grinder")
    send = agent.page.get_by_role(
        "button", name="Send Burr Coffee Grinder to the customer"
    )
    send.click()

    card = customer.widget.locator(".sb-product")
    expect(card.locator(".sb-product__name")).to_have_text("Burr Coffee Grinder")
    expect(card.locator(".sb-product__price")).to_contain_text("89.00")
    expect(card.locator("img")).to_have_attribute("src", re.compile(r"/SB-1006\.svg$"))
    link = card.get_by_role("link", name="View Burr Coffee Grinder")
    expect(link).to_have_attribute("href", re.compile(r"/shop/product/SB-1006$"))
    expect(agent.messages.locator(".sb-product__name")).to_have_text(
        "Burr Coffee Grinder"
    )

    # The search also finds by SKU.
    agent.page.get_by_label("Search by name or SKU").fill("SB-1001")
    expect(agent.page.locator("#product-results")).to_contain_text("Espresso Roast")

    # The link leads to the product's page in the shop.
    link.click()
    expect(
        customer.page.get_by_role("heading", name="Burr Coffee Grinder", level=1)
    ).to_be_visible()


def test_markup_in_messages_shows_as_text_and_runs_nothing(session: Session) -> None:
    markup = "<img src=x onerror=alert(1)>"
    agent = Agent(session.page()).log_in("alice")
    customer = Customer(session.page()).visit()
    customer.start_chat(name="<b>Mallory</b>", email="mallory@example.com")

    customer.send(markup)
    agent.open_chat("<b>Mallory</b>")
    expect(agent.message(markup)).to_have_count(1)
    agent.reply(f"You wrote {markup}")
    expect(customer.message(f"You wrote {markup}")).to_be_visible()

    # The text is there as text; no element came out of it anywhere.
    assert markup in agent.texts()
    assert f"You wrote {markup}" in customer.texts()
    expect(agent.page.locator("#conversation-messages img")).to_have_count(0)
    expect(customer.widget.locator(".sb-messages img")).to_have_count(0)
    expect(agent.page.locator("#chat-list b, #customer b")).to_have_count(0)
    expect(agent.page.locator("#customer")).to_contain_text("<b>Mallory</b>")
    assert session.dialogs == []
