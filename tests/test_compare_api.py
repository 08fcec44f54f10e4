"""Compare and score_take through gradio_client on a live server, and in a real browser."""

import pytest
import soundfile as sf
from gradio_client import handle_file
from playwright.sync_api import expect

from studio.studio import NewVoice


@pytest.fixture(scope="module")
def voices(studio, ja_clips):
    names = []
    for entry, name in zip(ja_clips[:2], ("Cmp Alpha", "Cmp Nezumi")):
        studio.save_voice(NewVoice(name, entry["path"], entry["text"]))
        names.append(name)
    return names


def test_compare_endpoint_scores_every_column(client, voices, ja_clips):
    scores, files = client.predict(text="Hello there.", language="en",
                                   voices=[voices[0], f"{voices[0]}:xvector", voices[1]],
                                   reference=handle_file(str(ja_clips[2]["path"])), ref_text=ja_clips[2]["text"],
                                   seed=3, takes=2, max_frames=6, api_name="/compare")
    assert [s["column"] for s in scores] == [voices[0], f"{voices[0]} (xvector)", voices[1], "Reference clip"]
    for column in scores:
        assert len(column["takes"]) == 2 and {t["seed"] for t in column["takes"]} == {3, 4}
        assert column["takes"][0]["combined"] >= column["takes"][1]["combined"]
        assert all(t["similarity"] is not None and t["error_kind"] == "WER" for t in column["takes"])
    assert len(files) == 4 and all(len(sf.read(f)[0]) == 6 * 1920 for f in files)


def test_compare_errors_are_messages(client, voices):
    with pytest.raises(Exception, match="no voice named 'Nobody'"):
        client.predict(text="Hi.", language="en", voices=[voices[0], "Nobody"], api_name="/compare")
    with pytest.raises(Exception, match="greater than maximum value 8|Takes per column"):
        client.predict(text="Hi.", language="en", voices=voices, takes=20, api_name="/compare")


def test_score_take_endpoint(client, ja_clips):
    same = client.predict(audio_file=handle_file(str(ja_clips[0]["path"])),
                          reference=handle_file(str(ja_clips[0]["path"])), text=ja_clips[0]["text"],
                          language="ja", api_name="/score_take")
    other = client.predict(audio_file=handle_file(str(ja_clips[0]["path"])),
                           reference=handle_file(str(ja_clips[2]["path"])), text=ja_clips[2]["text"],
                           language="ja", api_name="/score_take")
    assert same["similarity"] > other["similarity"] and same["error_rate"] < other["error_rate"]
    assert same["error_kind"] == "CER" and same["flags"] == [] and same["combined"] > other["combined"]


def test_synthesize_can_retry_flagged_takes(client, ja_clips):
    entry = ja_clips[0]
    wav, summary = client.predict(text="Hello.", language="en", reference=handle_file(str(entry["path"])),
                                  ref_text=entry["text"], seed=20, max_frames=4, retries=1, api_name="/synthesize")
    assert "retrying with seed 21" in summary and "seed 21" in summary


def test_browser_compares_two_columns_and_approves_a_take(browser, live_server, voices, studio):
    page = browser.new_page()
    page.goto(live_server)
    page.get_by_role("tab", name="Compare").click()
    for index, name in enumerate(voices):
        field = page.locator(f"#compare-source-{index} input").first
        field.click()
        field.fill(name)
        field.press("Enter")
    page.get_by_label("Max frames per sentence (0 = from text)").last.fill("6")
    page.locator("#compare-run").click()
    expect(page.locator("#compare-table")).to_contain_text("Speaker similarity", timeout=180000)
    expect(page.locator("#compare-table")).to_contain_text("★")
    expect(page.locator("#compare-table")).to_contain_text("Similarity vs the best column")
    expect(page.locator("#compare-scores-1")).to_contain_text("combined")
    page.screenshot(path=str(studio.files.root / "compare.png"), full_page=True)
    page.locator("#compare-approve-1").click()
    expect(page.locator("#compare-message")).to_contain_text(f"as the preview of '{voices[1]}'", timeout=30000)
    page.close()
    approved = studio.library.get(voices[1])
    assert approved.preview == "preview.wav" and approved.approved["seed"] == 0
    assert approved.approved["temperature"] == 0.9 and approved.approved["text"].startswith("Hello!")
