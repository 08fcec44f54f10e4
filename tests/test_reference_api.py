"""prepare_reference and transcribe through gradio_client on a live server."""

import numpy as np
import pytest
import soundfile as sf
from gradio_client import handle_file


def test_prepare_reference_cleans_and_reports(client, ja_clips, tmp_path):
    x, rate = sf.read(ja_clips[2]["path"], dtype="float32")
    noisy = np.concatenate([np.zeros(rate), x * 0.1, np.zeros(rate)])
    noisy += 0.002 * np.random.RandomState(0).randn(len(noisy))
    source = tmp_path / "quiet_44k_stereo.wav"
    import soxr
    stereo = soxr.resample(noisy, rate, 44100)
    sf.write(source, np.stack([stereo, stereo], axis=1), 44100)
    cleaned, report = client.predict(reference=handle_file(str(source)), start=0.5, end=0, denoise=True,
                                      api_name="/prepare_reference")
    samples, cleaned_rate = sf.read(cleaned)
    assert cleaned_rate == 24000 and samples.ndim == 1
    assert report["before"]["channels"] == 2 and report["after"]["sample_rate"] == 24000
    assert report["after"]["loudness_lufs"] == pytest.approx(-20, abs=1.5)
    assert len(samples) / 24000 < 6.5  # leading and trailing silence trimmed
    assert any("Trimmed silence" in step for step in report["steps"])
    assert report["after"]["ok"] is True


def test_transcribe_returns_text_language_and_words(client, ja_clips):
    result = client.predict(reference=handle_file(str(ja_clips[1]["path"])), language="Auto",
                            api_name="/transcribe")
    assert result["language"] == "Japanese" and result["probability"] > 0.8
    assert "図書館" in result["text"]
    assert result["words"] and {"start", "end", "text", "probability"} <= set(result["words"][0])


@pytest.mark.parametrize("language", ["auto", "ja", "JA", "japanese"])
def test_transcribe_takes_language_codes_and_any_case(client, ja_clips, language):
    """The dropdown shows names, but scripts may send codes or lower case (no choice check refuses them)."""
    result = client.predict(reference=handle_file(str(ja_clips[0]["path"])), language=language,
                            api_name="/transcribe")
    assert result["language"] == "Japanese"


def test_bad_uploads_get_messages(client, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(Exception, match="empty"):
        client.predict(reference=handle_file(str(empty)), api_name="/prepare_reference")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(48000, np.float32), 24000)
    with pytest.raises(Exception, match="silent"):
        client.predict(reference=handle_file(str(silent)), language="Japanese", api_name="/transcribe")
