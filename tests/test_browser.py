"""The web UI in a real browser (Debian chromium driven by Playwright)."""

import pytest


@pytest.fixture()
def page(browser, live_server):
    page = browser.new_page()
    page.goto(live_server)
    page.wait_for_selector("#status", timeout=30000)
    yield page
    page.close()


def test_page_shows_the_four_tabs(page):
    for name in ("Reference", "Preview", "Compare", "Library"):
        assert page.get_by_role("tab", name=name).is_visible()


def test_page_serves_without_loading_a_model(settings, browser):
    """A fresh studio (no model loaded) serves its page and says the model loads on first use."""
    from studio.engine import Engine
    from studio.ui import build_app
    from tests.conftest import free_port

    engine = Engine(settings)
    demo = build_app(settings, engine)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.get_by_text("loads on first use").wait_for(timeout=30000)
        page.close()
        assert not engine.loaded
    finally:
        demo.close()


def test_preview_synthesize_shows_an_error_without_reference(page):
    page.get_by_role("tab", name="Preview").click()
    page.get_by_role("button", name="Synthesize").click()
    page.get_by_text("Upload or record a reference clip").first.wait_for(timeout=30000)
