"""Engines in the listener's browser: the /browser/ page runs the tiny stand-in graphs with ONNX Runtime Web
in headless Chromium (WebAssembly and the software WebGPU adapter) and must equal the server engine."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from studio.config import Settings
from studio.engines import Sampling, SpeakJob
from studio.studio import NewVoice, SpeakRequest, Studio
from studio.text import split_sentences
from tests.conftest import CHROMIUM, FIXTURES, free_port

RUNTIME = Path(__file__).resolve().parents[1] / "node_modules" / "onnxruntime-web" / "dist"
TEXT = "Hello there. This is the second sentence!"
FRAMES = 12  # one full decoder window and a closing one per sentence
VOICE = "Browser Voice"
MARVIS_VOICE = "Marvis Voice"
MARVIS_FRAMES = 6  # one full Mimi window (5 frames) and a closing one per sentence


def require(condition: bool, message: str) -> None:
    if not condition:
        if os.environ.get("STUDIO_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def graphs_folder(chatterbox_dir, tmp_path_factory) -> Path:
    """The tiny Chatterbox-Turbo graphs, with the language model's weights in an .onnx_data file as published."""
    import onnx

    folder = tmp_path_factory.mktemp("browser-chatterbox") / "model"
    shutil.copytree(chatterbox_dir, folder)
    model = onnx.load(folder / "onnx" / "language_model.onnx")
    onnx.save_model(model, folder / "onnx" / "language_model.onnx", save_as_external_data=True,
                    all_tensors_to_one_file=True, location="language_model.onnx_data", size_threshold=0)
    return folder


@pytest.fixture(scope="module")
def marvis_graphs(marvis_dir, tmp_path_factory) -> Path:
    """The tiny CSM stand-in exported by `studio.export` (checked against PyTorch there)."""
    from studio.engines.marvis.export import export_marvis

    out = tmp_path_factory.mktemp("browser-marvis")
    check = export_marvis(Settings(marvis_model=str(marvis_dir), device="cpu", dtype="float32"), out)
    assert check.passed
    return out


@pytest.fixture(scope="module")
def browser_studio(graphs_folder, marvis_dir, marvis_graphs, tmp_path_factory) -> Studio:
    settings = Settings(engine="chatterbox-turbo", chatterbox_model=str(graphs_folder), device="cpu",
                        dtype="float32", voices_dir=tmp_path_factory.mktemp("browser-voices"),
                        marvis_model=str(marvis_dir), marvis_onnx=str(marvis_graphs))
    studio = Studio(settings)
    clip = json.loads((FIXTURES / "clips.json").read_text(encoding="utf-8"))[0]
    studio.save_voice(NewVoice(VOICE, FIXTURES / clip["file"], "", "English", "xvector"))
    studio.save_voice(NewVoice(MARVIS_VOICE, FIXTURES / clip["file"], clip["text"], "Japanese", "icl"))
    return studio


@pytest.fixture(scope="module")
def studio_url(browser_studio):
    from app import launch

    require(RUNTIME.is_dir(), "the browser engine tests need onnxruntime-web: run `npm ci`")
    studio = Studio(browser_studio.settings.replace(port=free_port()), browser_studio.engine, browser_studio.library,
                    browser_studio.transcriber)
    demo = launch(studio, block=False, quiet=True)
    yield f"http://127.0.0.1:{studio.settings.port}"
    demo.close()


@pytest.fixture(scope="module")
def gpu_browser(playwright):
    """Chromium with its software WebGPU adapter (there is no GPU here) and audio that may start unasked."""
    chromium = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--headless", "--no-sandbox", "--enable-unsafe-webgpu", "--autoplay-policy=no-user-gesture-required",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--no-first-run"])
    yield chromium
    chromium.close()


def open_page(context, url: str, query: str = ""):
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{url}/browser/{query}")
    page.wait_for_selector("body[data-ready=true]", timeout=60000)
    assert errors == []
    return page


def speak(page, text: str = TEXT, frames: int = FRAMES, temperature: float = 0) -> dict:
    page.fill("#text", text)
    page.fill("#temperature", str(temperature))
    page.fill("#max-frames", str(frames))
    page.evaluate("window.voiceStudioTake = null")
    page.click("#speak")
    page.wait_for_function("window.voiceStudioTake", timeout=180000)
    return page.evaluate("window.voiceStudioTake")


def server_steps(studio: Studio, text: str, frames: int, engine: str = "chatterbox-turbo", voice: str = VOICE
                 ) -> list[list]:
    """The server engine's greedy tokens (Chatterbox-Turbo) or frames of codes (Marvis), sentence by sentence."""
    plan = studio.sentence_plan(engine, text, "English", frames / 12.5)  # what the page is told
    engine = studio.engine_for(engine)
    prompt = studio.prompt_for(voice, engine=engine)
    steps = []
    for sentence, limit in plan.sentences:
        job = SpeakJob(sentence, "English", prompt, Sampling(temperature=0), (0,), limit * engine.capabilities.step_seconds)
        with engine.generation_lock:
            made = engine.generate_takes(job, limit, engine.generators([0]))
            steps.append([codes[0].tolist() for codes, alive in made if bool(alive[0])])
    return [[step[0] if len(step) == 1 else step for step in sentence] for sentence in steps]


def server_take(studio: Studio, text: str, frames: int, engine: str = "chatterbox-turbo", voice: str = VOICE
                ) -> np.ndarray:
    stream = studio.stream(SpeakRequest(text, "English", voice=voice, engine=engine,
                                        sampling=Sampling(temperature=0, max_seconds=frames / 12.5)))
    for _ in stream:
        pass
    return stream.take.samples


@pytest.mark.parametrize("backend", ["wasm", "webgpu"])
def test_page_speaks_like_the_server(gpu_browser, studio_url, browser_studio, backend, tmp_path):
    context = gpu_browser.new_context()
    page = open_page(context, studio_url, f"?backend={backend}")
    if backend == "webgpu":
        assert page.evaluate("navigator.gpu.requestAdapter().then(a => a !== null)")
    take = speak(page)
    assert "error" not in take, take
    assert take["backend"] == backend and take["variant"] == "fp32"
    assert take["cacheLocation"] == ("gpu-buffer" if backend == "webgpu" else "cpu")  # WebGPU keeps its cache
    assert take["steps"] == server_steps(browser_studio, TEXT, FRAMES)
    expected = server_take(browser_studio, TEXT, FRAMES)
    samples = np.array(take["samples"], np.float32)
    assert len(samples) == len(expected) == 2 * (2 * FRAMES + 3) * 960 and np.abs(expected).max() > 0.05  # 80 ms: 2 tokens
    assert np.abs(samples - expected).max() < 1e-5
    status = page.locator("#status").inner_text()
    assert ("WebGPU" if backend == "webgpu" else "WebAssembly") in status and "variant fp32" in status
    metrics = page.locator("#metrics").inner_text()
    assert "first audio after" in metrics and "real-time factor" in metrics
    assert take["timeToFirstAudio"] > 0 and take["realTimeFactor"] > 0
    assert page.locator("#take").get_attribute("src").startswith("blob:")
    page.screenshot(path=str(tmp_path / f"browser-{backend}.png"), full_page=True)
    context.close()


@pytest.mark.parametrize("backend", ["wasm", "webgpu"])
def test_marvis_page_speaks_like_the_server(gpu_browser, studio_url, browser_studio, backend):
    context = gpu_browser.new_context()
    page = open_page(context, studio_url, f"?backend={backend}&engine=marvis&voice={MARVIS_VOICE}&variant=fp32")
    take = speak(page, frames=MARVIS_FRAMES)  # float32: Auto would pick 4-bit on WebGPU
    assert "error" not in take, take
    assert take["engine"] == "marvis" and take["backend"] == backend and take["variant"] == "fp32"
    assert take["cacheLocation"] == ("gpu-buffer" if backend == "webgpu" else "cpu")
    expected_steps = server_steps(browser_studio, TEXT, MARVIS_FRAMES, "marvis", MARVIS_VOICE)
    assert [len(s) for s in expected_steps] == [MARVIS_FRAMES, MARVIS_FRAMES] and len(expected_steps[0][0]) == 32
    assert take["steps"] == expected_steps  # every code of every frame
    expected = server_take(browser_studio, TEXT, MARVIS_FRAMES, "marvis", MARVIS_VOICE)
    samples = np.array(take["samples"], np.float32)
    assert len(samples) == len(expected) == 2 * MARVIS_FRAMES * 1920 and np.abs(expected).max() > 0.01
    assert np.abs(samples - expected).max() < 1e-5
    assert "Marvis TTS on" in page.locator("#status").inner_text()
    context.close()


def test_smaller_marvis_variants_run_in_webassembly(gpu_browser, studio_url):
    """8-bit (MatMulInteger) and 4-bit (MatMulNBits) graphs run in the page; they are smaller, not equal.

    Choosing another variant in the same page releases the sessions of the one before.
    """
    context = gpu_browser.new_context()
    page = open_page(context, studio_url, f"?backend=wasm&engine=marvis&voice={MARVIS_VOICE}&variant=q8")
    for variant in ("q8", "q4"):
        page.select_option("#variant", variant)
        take = speak(page, "Smaller.", 3)
        assert "error" not in take, take
        assert take["variant"] == variant and 0 < len(take["samples"]) and np.isfinite(take["samples"]).all()
        assert f"variant {variant}" in page.locator("#status").inner_text()
    context.close()


def test_graphs_are_downloaded_once_then_read_from_the_cache(gpu_browser, studio_url):
    context = gpu_browser.new_context()
    graph_requests = []
    context.on("request", lambda request: "/graphs/" in request.url and graph_requests.append(request.url))
    page = open_page(context, studio_url, "?backend=wasm")
    assert "error" not in speak(page, "Once.", 3)
    loaded = page.evaluate("window.voiceStudioLoaded")
    assert not loaded["fromCache"] and len(graph_requests) == 4  # three graphs and the language model's data
    assert page.locator("#download-bar").evaluate("bar => bar.value") == 1
    assert "downloaded 5.0 MB" in page.locator("#download-note").inner_text()
    page.close()
    again = open_page(context, studio_url, "?backend=wasm")
    assert "error" not in speak(again, "Twice.", 3)
    assert again.evaluate("window.voiceStudioLoaded")["fromCache"] and len(graph_requests) == 4
    assert "from the browser's cache" in again.locator("#download-note").inner_text()
    context.close()


def test_stop_ends_generation_and_keeps_what_was_made(gpu_browser, studio_url):
    context = gpu_browser.new_context()
    page = open_page(context, studio_url, "?backend=wasm")
    page.fill("#text", "Hello there. " * 20)  # twenty sentences of about a hundred tokens each
    page.fill("#temperature", "0")
    page.fill("#max-frames", "0")
    page.evaluate("window.voiceStudioTake = null")
    page.click("#speak")
    page.locator("#metrics").get_by_text("so far").wait_for(timeout=60000)
    page.click("#stop")
    page.wait_for_function("window.voiceStudioTake", timeout=60000)
    take = page.evaluate("window.voiceStudioTake")
    made = sum(len(steps) for steps in take["steps"])
    assert take["stopped"] and 0 < made < 20 * 100 and len(take["samples"]) > 0
    assert "Stopped." in page.locator("#metrics").inner_text()
    assert page.locator("#speak").is_enabled() and page.locator("#stop").is_disabled()
    context.close()


def test_page_is_isolated_and_loads_nothing_from_elsewhere(gpu_browser, studio_url):
    context = gpu_browser.new_context()
    hosts = set()
    context.on("request", lambda request: hosts.add(request.url.split("/")[2]))
    page = open_page(context, studio_url, "?backend=wasm")
    assert page.evaluate("crossOriginIsolated")  # COOP/COEP: WebAssembly may use threads
    assert "Cross-origin isolated" in page.locator("#status").inner_text()
    assert "error" not in speak(page, "Local only.", 3)
    assert hosts == {studio_url.split("/")[2]}  # the runtime is served by the studio, never a CDN
    assert "thread" in page.locator("#status").inner_text()
    context.close()


def test_a_missing_variant_and_running_out_of_memory_are_told_plainly(gpu_browser, studio_url):
    context = gpu_browser.new_context()
    page = open_page(context, studio_url, "?backend=wasm&variant=q4")
    take = speak(page, "Which variant?", 3)
    assert "The q4 variant of Chatterbox-Turbo is not in the studio's model folder; it has: fp32." in take["error"]
    message = page.evaluate("describeFailure(new RangeError('Array buffer allocation failed'), "
                            "{name: 'fp32', bytes: 5e9})")
    assert message.startswith("This tab ran out of memory running the fp32 variant (5.00 GB).")
    context.close()


def test_no_variant_fits_webassembly(graphs_folder, tmp_path, gpu_browser):
    """Weights past WebAssembly's 4 GB (a sparse file: no disk is used) are refused before any download."""
    from app import launch

    folder = tmp_path / "huge"
    shutil.copytree(graphs_folder, folder)
    with open(folder / "onnx" / "language_model.onnx_data_1", "wb") as handle:
        handle.truncate(5 * 1024 ** 3)
    studio = Studio(Settings(engine="chatterbox-turbo", chatterbox_model=str(folder), device="cpu",
                             voices_dir=tmp_path / "voices", port=free_port()))
    clip = json.loads((FIXTURES / "clips.json").read_text(encoding="utf-8"))[0]
    studio.save_voice(NewVoice(VOICE, FIXTURES / clip["file"], "", "English", "xvector"))
    demo = launch(studio, block=False, quiet=True)
    try:
        context = gpu_browser.new_context()
        downloads = []
        context.on("request", lambda request: "/graphs/" in request.url and downloads.append(request.url))
        page = open_page(context, f"http://127.0.0.1:{studio.settings.port}", "?backend=wasm")
        take = speak(page, "Too big.", 3)
        assert "No variant of Chatterbox-Turbo fits WebAssembly: the smallest is 5.37 GB" in take["error"]
        assert "Use a browser with WebGPU" in take["error"] and downloads == []
        page.select_option("#variant", "fp32")
        take = speak(page, "Too big.", 3)
        assert "The fp32 variant of Chatterbox-Turbo (5.37 GB) does not fit WebAssembly" in take["error"]
        assert downloads == []
        context.close()
    finally:
        demo.close()


# -- the routes, without a browser ---------------------------------------------------------------------------------

def routes_client(studio: Studio, **changes) -> TestClient:
    from fastapi import FastAPI

    from studio.browser.routes import add_routes

    app = FastAPI()
    add_routes(app, Studio(studio.settings.replace(**changes), studio.engine, studio.library, studio.transcriber))
    return TestClient(app)


def test_data_routes_follow_the_speech_routes_access_rules(browser_studio):
    keyed = routes_client(browser_studio, api_key="sesame", auth=("user", "pass"))
    for url in ("/browser/api/voices", "/browser/api/chatterbox-turbo/manifest",
                f"/browser/api/chatterbox-turbo/voices/{VOICE}"):
        refused = keyed.get(url)
        assert refused.status_code == 401 and "Authorization: Bearer" in refused.json()["error"]
        assert keyed.get(url, headers={"Authorization": "Bearer sesame"}).status_code == 200
    assert keyed.post("/browser/api/chatterbox-turbo/text", json={"text": "Hi."}).status_code == 401
    no_key = routes_client(browser_studio, auth=("user", "pass")).get("/browser/api/voices")
    assert no_key.status_code == 401 and "--api-key" in no_key.json()["error"]
    page = keyed.get("/browser/")  # the page itself holds no voice data: it asks for the key
    assert page.status_code == 200 and 'id="key-row"' in page.text
    assert page.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert page.headers["Cross-Origin-Embedder-Policy"] == "require-corp"


def test_marvis_needs_a_matching_export(browser_studio, marvis_graphs, tmp_path):
    missing = routes_client(browser_studio, marvis_onnx="").get("/browser/api/marvis/manifest")
    assert missing.status_code == 503 and "python -m studio.export marvis" in missing.json()["error"]
    assert routes_client(browser_studio, marvis_onnx=str(tmp_path)).get("/browser/api/marvis/manifest").json()[
        "error"].endswith("is not a folder written by `python -m studio.export marvis`.")
    other = tmp_path / "other"
    shutil.copytree(marvis_graphs, other)
    layout = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps(dict(layout, source_fingerprint="0" * 16)))
    stale = routes_client(browser_studio, marvis_onnx=str(other)).get("/browser/api/marvis/manifest")
    assert stale.status_code == 503 and "exported from another Marvis checkpoint" in stale.json()["error"]
    manifest = routes_client(browser_studio).get("/browser/api/marvis/manifest").json()
    assert [v["name"] for v in manifest["variants"]] == ["fp32", "q8", "q4"]
    assert manifest["layout"]["num_codebooks"] == 32 and manifest["layout"]["check"]["passed"]
    prompt = routes_client(browser_studio).get(f"/browser/api/marvis/voices/{MARVIS_VOICE}").json()
    assert list(prompt["tensors"]) == ["prefix_embeds"] and prompt["tensors"]["prefix_embeds"]["dtype"] == "float32"


def test_bad_requests_get_clear_messages(browser_studio):
    client = routes_client(browser_studio)
    manifest = client.get("/browser/api/chatterbox-turbo/manifest").json()
    assert [v["name"] for v in manifest["variants"]] == ["fp32"]
    assert set(manifest["variants"][0]["files"]) == {"embed_tokens.onnx", "language_model.onnx",
                                                     "language_model.onnx_data", "conditional_decoder.onnx"}
    base = f"/browser/api/chatterbox-turbo/graphs/{manifest['fingerprint']}/"
    assert client.get(base + "language_model.onnx_data").status_code == 200
    cases = [
        (client.get(base + "speech_encoder.onnx"), 404, "No graph file"),  # runs on the server only
        (client.get("/browser/api/chatterbox-turbo/graphs/0123456789abcdef/embed_tokens.onnx"), 404, "reload"),
        (client.get("/browser/api/qwen/manifest"), 404, "No engine 'qwen' runs in the browser"),
        (client.get("/browser/api/chatterbox-turbo/voices/Nobody"), 404, "Nobody"),
        (client.post("/browser/api/chatterbox-turbo/text", content=b"[1"), 400, "JSON object"),
        (client.post("/browser/api/chatterbox-turbo/text", json={"text": "  "}), 400, "Type the text"),
        (client.post("/browser/api/chatterbox-turbo/text", json={"text": "x" * 5000}), 400, "limit"),
        (client.post("/browser/api/chatterbox-turbo/text", json={"text": "Hi", "max_frames": "9"}), 400,
         "whole number"),
        (client.post("/browser/api/chatterbox-turbo/text", json={"text": "Hi", "max_frames": 99999}), 400,
         "Max length"),
        (client.post("/browser/api/chatterbox-turbo/text", json={"text": "Hi", "language": "Japanese"}), 400,
         "English only"),
        (client.post("/browser/api/chatterbox-turbo/text", content=b"{" * 70000), 413, "at most"),
        (client.get("/browser/static/.hidden"), 404, "No such file"),
        (client.get("/browser/ort/ort.node.min.js"), 404, "No such file"),
    ]
    for response, status, words in cases:
        assert response.status_code == status and words in response.json().get("error", ""), (response.url,
                                                                                              response.text)
    for path in (base + "..%2Ftokenizer.json", "/browser/static/..%2F..%2Fconfig.py", base + "..%2F..%2Fconfig.json"):
        assert client.get(path).status_code == 404  # nothing outside the offered files is served
    plan = client.post("/browser/api/chatterbox-turbo/text", json={"text": TEXT, "max_frames": 7}).json()
    assert [s["text"] for s in plan["sentences"]] == split_sentences(TEXT, "English")
    assert all(s["limit"] == 14 and s["ids"] for s in plan["sentences"])  # 7 x 80 ms: 14 tokens of 40 ms


def test_the_page_asks_for_the_api_key_then_speaks(gpu_browser, browser_studio):
    from app import launch

    studio = Studio(browser_studio.settings.replace(port=free_port(), api_key="sesame"), browser_studio.engine,
                    browser_studio.library, browser_studio.transcriber)
    demo = launch(studio, block=False, quiet=True)
    try:
        context = gpu_browser.new_context()
        page = open_page(context, f"http://127.0.0.1:{studio.settings.port}", "?backend=wasm")
        assert page.locator("#key-row").is_visible()
        assert "A valid API key is required" in page.locator("#error").inner_text()
        page.fill("#key", "sesame")
        page.click("#key-save")
        page.wait_for_selector("body[data-ready=true]", timeout=60000)
        assert page.locator("#error").is_hidden() and page.locator("#speak").is_enabled()
        assert "error" not in speak(page, "With the key.", 3)
        context.close()
    finally:
        demo.close()


def test_a_missing_runtime_is_told_plainly(gpu_browser, studio_url, monkeypatch, tmp_path):
    from studio.browser import routes

    monkeypatch.setattr(routes, "RUNTIME", tmp_path / "no-node-modules")
    context = gpu_browser.new_context()
    page = open_page(context, studio_url)
    assert "ONNX Runtime Web is missing from this studio: run `npm ci`" in page.locator("#error").inner_text()
    assert page.locator("#speak").is_disabled()
    context.close()
