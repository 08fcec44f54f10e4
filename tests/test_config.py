from pathlib import Path

import pytest

from studio.config import DEFAULT_MODEL, Settings
from studio.errors import InvalidInput


def test_defaults_match_the_released_model():
    s = Settings.from_args([], env={})
    assert s.model == DEFAULT_MODEL
    assert (s.device, s.dtype, s.attn) == ("auto", "auto", "auto")
    assert s.voices_dir == Path("voices")
    assert s.preload is False and s.share is False and s.auth is None


def test_flags_parse():
    s = Settings.from_args(["--model", "/models/q", "--device", "cpu", "--dtype", "float32", "--attn", "eager",
                            "--voices-dir", "/tmp/v", "--port", "9000", "--share", "--auth", "ann:secret",
                            "--max-upload-mb", "5", "--concurrency", "3", "--preload"], env={})
    assert s.model == "/models/q" and s.device == "cpu" and s.dtype == "float32" and s.attn == "eager"
    assert s.voices_dir == Path("/tmp/v") and s.port == 9000 and s.share and s.preload
    assert s.auth == ("ann", "secret") and s.max_upload_mb == 5 and s.concurrency == 3


def test_environment_mirrors_flags_and_flags_win():
    env = {"STUDIO_MODEL": "/env/model", "STUDIO_PORT": "7000", "STUDIO_PRELOAD": "true", "STUDIO_DEVICE": "cpu"}
    s = Settings.from_args([], env=env)
    assert s.model == "/env/model" and s.port == 7000 and s.preload and s.device == "cpu"
    assert Settings.from_args(["--port", "7001"], env=env).port == 7001


def test_bad_auth_is_a_user_error():
    with pytest.raises(InvalidInput, match="USER:PASS"):
        Settings.from_args(["--auth", "nopassword"], env={})


def test_bad_choice_exits_with_usage(capsys):
    with pytest.raises(SystemExit):
        Settings.from_args(["--device", "tpu"], env={})
    assert "invalid choice" in capsys.readouterr().err
