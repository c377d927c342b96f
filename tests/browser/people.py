"""The two kinds of people in these tests: a shop customer and an agent.

Locators go through roles and labels where the page has them, so the tests
also check that the widget and the console can be used without a mouse
and read by a screen reader. Playwright's locators reach into the widget's
open shadow root.
"""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

__all__ = ["DEMO_AGENTS", "Agent", "Customer"]

DEMO_AGENTS = {
    "alice": ("alice-demo", "Alice Martin"),
    "bob": ("bob-demo", "Bob Okafor"),
    "carol": ("carol-demo", "Carol Nguyen"),
}


class Customer:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.widget = page.locator("#switchboard-widget")
        self.launcher = page.get_by_role("button", name=re.compile("^Chat Now"))
        self.panel = page.get_by_role("dialog", name="Chat with us")
        self.composer = page.get_by_role("textbox", name="Message", exact=True)
        self.messages = self.widget.locator(".sb-msg")
        self.status = self.widget.locator(".sb-status")
        self.typing = self.widget.locator(".sb-typing")
        self.banner = self.widget.locator(".sb-banner")

    def visit(self, path: str = "/") -> Customer:
        self.page.goto(path)
        expect(self.launcher).to_be_visible()
        return self

    def sign_in_as(self, name: str) -> None:
        self.page.get_by_label("Demo: signed in as").select_option(label=name)
        self.page.wait_for_load_state()
        expect(self.launcher).to_be_visible()

    def start_chat(
        self, name: str = "Vera Visitor", email: str = "vera@example.com"
    ) -> None:
        """Open the panel and get past the pre-chat form if it shows."""
        self.launcher.click()
        expect(self.panel).to_be_visible()
        start = self.page.get_by_role("button", name="Start chat")
        expect(start.or_(self.composer)).to_be_visible()
        if start.is_visible():
            self.page.get_by_label("Name (optional)").fill(name)
            self.page.get_by_label("Email (optional)").fill(email)
            start.click()
        expect(self.composer).to_be_visible()

    def send(self, text: str) -> None:
        self.composer.fill(text)
        self.composer.press("Enter")
        expect(self.message(text)).to_be_visible()

    def message(self, text: str) -> Locator:
        return self.messages.filter(has_text=text)

    def texts(self) -> list[str]:
        return self.widget.locator(".sb-msg__text, .sb-product__name").all_inner_texts()


class Agent:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.connection = page.locator("#connection")
        self.composer = page.get_by_role("combobox", name="Reply")
        self.messages = page.locator("#conversation-messages .sb-msg")
        self.chat_list = page.locator("#chat-list")
        self.queue = page.locator("#queue")
        self.typing = page.locator("#conversation-typing")
        self.state = page.locator("#conversation-state")

    def log_in(self, login: str) -> Agent:
        password, _ = DEMO_AGENTS[login]
        self.page.goto("/console")
        self.page.get_by_label("Login").fill(login)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()
        self.wait_connected()
        return self

    def wait_connected(self) -> None:
        expect(self.connection).to_have_text("Connected")

    def chat(self, customer: str) -> Locator:
        return self.chat_list.locator(".cs-chat").filter(has_text=customer)

    def open_chat(self, customer: str) -> None:
        self.chat(customer).click()
        expect(self.page.locator("#conversation-title")).to_have_text(customer)

    def reply(self, text: str) -> None:
        expect(self.composer).to_be_enabled()
        self.composer.fill(text)
        self.composer.press("Enter")
        expect(self.message(text)).to_be_visible()

    def message(self, text: str) -> Locator:
        return self.messages.filter(has_text=text)

    def texts(self) -> list[str]:
        return self.page.locator(
            "#conversation-messages :is(.sb-msg__text, .sb-product__name)"
        ).all_inner_texts()

    def board_row(self, name: str) -> Locator:
        return self.page.locator("#board .cs-agent").filter(has_text=name)

    def set_status(self, status: str) -> None:
        self.page.get_by_label("Status").select_option(status)
