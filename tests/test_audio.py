"""Loading, cleaning and assessing reference audio with real Japanese speech and a bad-input corpus."""

import numpy as np
import pytest
import soundfile as sf

from studio import audio
from studio.errors import AudioError


@pytest.fixture(scope="module")
def speech(ja_clips):
    return audio.load(ja_clips[2]["path"])  # 5.5 s, male


def true_snr(estimate: np.ndarray, clean: np.ndarray) -> float:
    n = min(len(estimate), len(clean))
    error = estimate[:n] - clean[:n]
    return 10 * np.log10(np.sum(clean[:n] ** 2) / max(np.sum(error ** 2), 1e-12))


def with_noise(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    noise = np.random.RandomState(seed).randn(len(x)).astype(np.float32)
    noise *= np.sqrt(np.mean(x ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    return (x + noise).astype(np.float32)


ALIGNED = dict(trim_silence=False, normalize=False, tail_ms=0, remove_dc=False)


# -- the bad-input corpus ---------------------------------------------------------------------------

def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        audio.load(path)


def test_truncated_header(tmp_path, ja_clips):
    good = tmp_path / "good.wav"
    sf.write(good, audio.load(ja_clips[0]["path"]).samples, 24000)
    path = tmp_path / "truncated.wav"
    path.write_bytes(good.read_bytes()[:30])
    with pytest.raises(AudioError, match="could not be decoded|not a WAV"):
        audio.load(path)


def test_non_audio(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("Dear diary, today I recorded nothing." * 50)
    with pytest.raises(AudioError, match="could not be decoded|not a WAV"):
        audio.load(path)


def test_silence_loads_but_is_refused_by_the_report(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(24000 * 5, np.float32), 24000)
    report = audio.assess(audio.load(path))
    assert not report.ok and "No speech" in report.advice()


def test_8_bit_audio(tmp_path, speech):
    path = tmp_path / "u8.wav"
    sf.write(path, speech.samples, 24000, subtype="PCM_U8")
    clip = audio.load(path)
    assert clip.samples.dtype == np.float32 and np.abs(clip.samples).max() <= 1.0
    assert true_snr(clip.samples, speech.samples) > 15  # 8-bit quantisation, not garbage
    assert audio.assess(clip).ok


def test_six_channels_are_mixed_down(tmp_path, speech):
    path = tmp_path / "surround.wav"
    sf.write(path, np.stack([speech.samples] * 6, axis=1), 24000)
    clip = audio.load(path)
    assert clip.channels == 6 and clip.samples.ndim == 1
    report = audio.assess(clip)
    assert report.channels == 6 and "6 channels" in report.advice()


@pytest.mark.parametrize("rate", [8000, 96000])
def test_unusual_rates_are_resampled(tmp_path, speech, rate):
    import soxr

    path = tmp_path / f"{rate}.wav"
    sf.write(path, soxr.resample(speech.samples, 24000, rate), rate)
    clip = audio.load(path)
    assert clip.rate == rate
    cleaned, report = audio.clean(clip)
    assert cleaned.rate == 24000 and report.after.sample_rate == 24000
    assert ("Low sample rate" in report.before.advice()) == (rate == 8000)


def test_very_long_file_is_refused_before_decoding(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(8000 * 600, np.int16), 8000, subtype="PCM_16")
    with pytest.raises(AudioError, match="600 s long; the limit is 60 s"):
        audio.load(path, max_seconds=60)


def test_oversized_file_is_refused(tmp_path, speech):
    path = tmp_path / "big.wav"
    sf.write(path, speech.samples, 24000)
    with pytest.raises(AudioError, match="the limit is"):
        audio.load(path, max_bytes=10_000)


@pytest.mark.parametrize("fmt, subtype", [("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_common_formats_load(tmp_path, speech, fmt, subtype):
    path = tmp_path / f"clip.{fmt.lower()}"
    sf.write(path, speech.samples, 24000, format=fmt, subtype=subtype)
    clip = audio.load(path)
    assert abs(clip.duration - speech.duration) < 0.1


def encode_with_pyav(path, samples, rate, codec, container, codec_rate=None, channels=1):
    """Write a compressed file with PyAV itself: no system ffmpeg on the machine is needed."""
    import av

    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=codec_rate or rate)
        stream.layout = layout
        frame = av.AudioFrame.from_ndarray(np.tile(samples[None, :], (channels, 1)).astype(np.float32),
                                           format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in list(stream.encode(frame)) + list(stream.encode(None)):
            out.mux(packet)
    return path


@pytest.mark.parametrize("name, codec, container, codec_rate", [
    ("clip.m4a", "aac", "mp4", None),
    ("clip.webm", "libopus", "webm", 48000),
    ("clip.opus", "libopus", "ogg", 48000),
    ("clip.mp3", "libmp3lame", "mp3", None),
    ("clip.aac", "aac", "adts", None),
])
def test_browser_and_phone_formats_load_without_system_ffmpeg(tmp_path, speech, monkeypatch, name, codec,
                                                              container, codec_rate):
    path = encode_with_pyav(tmp_path / name, speech.samples, 24000, codec, container, codec_rate)
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without ffmpeg
    clip = audio.load(path)
    assert abs(clip.duration - speech.duration) < 0.2
    assert np.abs(clip.samples).max() > 0.1


def test_playlists_and_other_non_audio_containers_are_never_opened(tmp_path, speech):
    """An .m3u8 (or a concat list) could pull local files into a reference; only audio formats open."""
    secret = tmp_path / "secret.wav"
    sf.write(secret, speech.samples, 24000)
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:5.5,\nfile://{secret}\n#EXT-X-ENDLIST\n"
    for name, body in [("list.m3u8", playlist), ("disguised.wav", playlist),
                       ("concat.wav", f"ffconcat version 1.0\nfile '{secret}'\n")]:
        path = tmp_path / name
        path.write_text(body)
        with pytest.raises(AudioError, match="could not be decoded"):
            audio.load(path)


def test_sample_rate_and_channels_are_bounded_before_decoding(tmp_path, speech):
    fast = tmp_path / "384k.wav"
    sf.write(fast, np.zeros(384000, np.float32), 384000)
    with pytest.raises(AudioError, match="384000 Hz; the studio takes 8-192 kHz"):
        audio.load(fast)
    wide = tmp_path / "ten_channels.wav"
    sf.write(wide, np.zeros((24000, 10), np.float32), 24000)
    with pytest.raises(AudioError, match="10 channels; the studio takes 1 to 8"):
        audio.load(wide)
    slow = tmp_path / "4k.wav"
    sf.write(slow, np.zeros(16000, np.float32), 4000)
    with pytest.raises(AudioError, match="4000 Hz"):
        audio.load(slow)


def test_long_compressed_file_is_refused_from_its_container(tmp_path):
    """A 20-minute Opus file is tiny; its length is read from the container, not by decoding it."""
    quiet = np.zeros(24000 * 60 * 20, np.float32)
    path = encode_with_pyav(tmp_path / "long.webm", quiet, 24000, "libopus", "webm", 48000)
    assert path.stat().st_size < 3_000_000
    with pytest.raises(AudioError, match="1200 s long; the limit is 60 s"):
        audio.load(path, max_seconds=60)


def test_a_file_that_hides_its_length_stops_at_the_decoding_cap(tmp_path, speech, monkeypatch):
    """Without a usable declared length, decoding itself stops at the limit."""
    path = encode_with_pyav(tmp_path / "long.aac", np.tile(speech.samples, 4), 24000, "aac", "adts")
    monkeypatch.setattr(audio, "_declared_seconds", lambda container, stream: None)
    with pytest.raises(AudioError, match="the limit is 10 s"):
        audio.load(path, max_seconds=10)
    assert abs(audio.load(path, max_seconds=60).duration - 4 * speech.duration) < 0.3


def test_arrays_are_bounded_like_files():
    with pytest.raises(AudioError, match="the limit is 1 s"):
        audio.from_array(np.zeros(48000, np.float32), 24000, max_seconds=1)
    with pytest.raises(AudioError, match="studio takes 8-192 kHz"):
        audio.from_array(np.zeros(1000, np.float32), 500000)
    with pytest.raises(AudioError, match="NaN"):
        audio.from_array(np.array([0.0, np.nan] * 100, np.float32), 24000)
    stereo = audio.from_array(np.ones((2, 24000), np.int16), 24000)
    assert stereo.channels == 2 and stereo.samples.shape == (24000,)


# -- cleaning ---------------------------------------------------------------------------------------

def test_white_noise_gets_cleaner(speech):
    noisy = audio.Clip(with_noise(speech.samples, 10), 24000)
    cleaned, report = audio.clean(noisy, audio.CleanOptions(denoise=True, **ALIGNED))
    assert any(step.startswith("Denoised") for step in report.steps)
    assert true_snr(cleaned.samples, speech.samples) > true_snr(noisy.samples, speech.samples) + 1
    assert report.after.snr_db > report.before.snr_db


def test_noise_with_a_lead_in_is_denoised_from_the_lead_in(speech):
    lead = np.zeros(36000, np.float32)
    clean = np.concatenate([lead, speech.samples])
    noisy = audio.Clip(with_noise(clean, 12, seed=1), 24000)
    cleaned, report = audio.clean(noisy, audio.CleanOptions(denoise=True, **ALIGNED))
    assert true_snr(cleaned.samples, clean) > true_snr(noisy.samples, clean) + 1


@pytest.mark.parametrize("setting", ["50", "auto"])
def test_mains_hum_is_removed(speech, setting):
    t = np.arange(len(speech.samples)) / 24000
    hum = 0.05 * np.sin(2 * np.pi * 50 * t) + 0.02 * np.sin(2 * np.pi * 150 * t)
    hummed = audio.Clip((speech.samples + hum).astype(np.float32), 24000)
    assert audio.detect_hum(hummed.samples, 24000) == 50
    cleaned, report = audio.clean(hummed, audio.CleanOptions(hum=setting, **ALIGNED))
    assert "50 Hz" in " ".join(report.steps)
    assert true_snr(cleaned.samples, speech.samples) > true_snr(hummed.samples, speech.samples) + 6


def test_clean_clip_is_not_harmed_by_denoise(speech):
    cleaned, report = audio.clean(speech, audio.CleanOptions(denoise=True, **ALIGNED))
    assert true_snr(cleaned.samples, speech.samples) > 30
    assert "Denoise skipped" in " ".join(report.steps)


def test_no_hum_found_in_clean_speech(speech):
    assert audio.detect_hum(speech.samples, 24000) is None


def test_silence_is_trimmed_by_voice_activity_not_level(speech):
    quiet_noise = with_noise(np.zeros(48000, np.float32) + 1e-6, 0)[:48000] * 0.01  # a noisy room, no words
    padded = audio.Clip(np.concatenate([quiet_noise, speech.samples, np.zeros(24000, np.float32)]), 24000)
    cleaned, report = audio.clean(padded, audio.CleanOptions(tail_ms=150))
    assert speech.duration - 0.6 < cleaned.duration < speech.duration + 0.5
    assert any(step.startswith("Trimmed silence") for step in report.steps)
    assert np.abs(cleaned.samples[-int(0.15 * 24000):]).max() == 0  # the silence tail


def test_loudness_is_normalised(speech):
    quiet = audio.Clip(speech.samples * 0.05, 24000)
    cleaned, report = audio.clean(quiet)
    assert report.after.loudness_lufs == pytest.approx(-20, abs=1.0)
    assert report.after.peak_dbfs <= -0.9


def test_every_step_can_be_switched_off(speech):
    off = audio.CleanOptions(mono=False, resample=False, remove_dc=False, trim_silence=False, normalize=False,
                             tail_ms=0, denoise=False, hum="off")
    cleaned, report = audio.clean(speech, off)
    np.testing.assert_array_equal(cleaned.samples, speech.samples)
    assert report.steps == []


# -- quality report ---------------------------------------------------------------------------------

def test_good_reference_has_no_issues(speech):
    report = audio.assess(speech)
    assert report.ok and not report.issues and report.snr_db > 30 and report.speech_ratio > 0.7


def test_too_short_is_an_error_and_long_a_warning(speech):
    short = audio.trim(speech, 0, 1.2)
    assert not audio.assess(short).ok
    long = audio.Clip(np.concatenate([speech.samples] * 4), 24000)
    report = audio.assess(long)
    assert report.ok and "long for a reference" in report.advice()


def test_clipping_is_reported(speech):
    clipped = audio.Clip(np.clip(speech.samples * 8, -1, 1), 24000)
    report = audio.assess(clipped)
    assert not report.ok and "clipped" in report.advice()


def test_noisy_clip_is_warned_about(speech):
    report = audio.assess(audio.Clip(with_noise(speech.samples, 10), 24000))
    assert report.ok and "Noisy" in report.advice()


def test_two_speakers_are_suspected(ja_clips):
    female, male = audio.load(ja_clips[0]["path"]), audio.load(ja_clips[2]["path"])
    both = audio.Clip(np.concatenate([female.samples, np.zeros(12000, np.float32), male.samples]), 24000)
    assert "several speakers" in audio.assess(both).advice()
    assert "several speakers" not in audio.assess(male).advice()


def test_trim_by_seconds(speech):
    part = audio.trim(speech, 1.0, 3.5)
    assert part.duration == pytest.approx(2.5, abs=1e-3)
    with pytest.raises(AudioError, match="at least 0.1 s"):
        audio.trim(speech, 3.0, 2.0)


def test_a_long_recording_is_cut_to_its_span_before_the_limit_applies(tmp_path):
    """Start/End on an upload over the reference limit: only the kept span is decoded and held to the limit."""
    import soundfile as sf

    rate = 16000
    seconds = np.arange(90 * rate) / rate
    path = tmp_path / "long.flac"
    sf.write(path, (0.1 * np.sin(2 * np.pi * 220 * seconds)).astype(np.float32), rate)
    with pytest.raises(audio.AudioError, match="the limit is 60 s"):
        audio.load(path, max_seconds=60)
    kept = audio.load(path, max_seconds=60, span=(70.0, 80.0))
    assert kept.duration == pytest.approx(10.0, abs=1e-3)
    assert np.allclose(kept.samples[:100], 0.1 * np.sin(2 * np.pi * 220 * seconds[70 * rate:70 * rate + 100]),
                       atol=1e-3)
    assert audio.load(path, max_seconds=60, span=(45.0, None)).duration == pytest.approx(45.0, abs=1e-3)
    with pytest.raises(audio.AudioError, match="the limit is 60 s"):
        audio.load(path, max_seconds=60, span=(5.0, None))
    with pytest.raises(audio.AudioError, match="Nothing of"):
        audio.load(path, max_seconds=60, span=(100.0, 110.0))
    with pytest.raises(audio.AudioError, match="end must come after the start"):
        audio.load(path, max_seconds=60, span=(20.0, 10.0))
