from pathlib import Path

import pytest

from studio.config import DEFAULT_MODEL, Settings


def test_defaults_match_the_released_model():
    s = Settings.from_args([], env={})
    assert s.model == DEFAULT_MODEL
    assert (s.device, s.dtype, s.attn) == ("auto", "auto", "auto")
    assert s.voices_dir == Path("voices")
    assert s.preload is False and s.share is False and s.auth is None


def test_flags_parse():
    s = Settings.from_args(["--model", "/models/q", "--device", "cpu", "--dtype", "float32", "--attn", "eager",
                            "--voices-dir", "/tmp/v", "--port", "9000", "--share", "--auth", "ann:secret",
                            "--max-upload-mb", "5", "--concurrency", "3", "--preload",
                            "--max-reference-seconds", "30", "--max-text-chars", "500",
                            "--max-ref-text-chars", "300", "--queue-size", "4"], env={})
    assert s.model == "/models/q" and s.device == "cpu" and s.dtype == "float32" and s.attn == "eager"
    assert s.voices_dir == Path("/tmp/v") and s.port == 9000 and s.share and s.preload
    assert s.auth == ("ann", "secret") and s.max_upload_mb == 5 and s.concurrency == 3
    assert (s.max_reference_seconds, s.max_text_chars, s.max_ref_text_chars, s.queue_size) == (30, 500, 300, 4)


def test_environment_mirrors_flags_and_flags_win():
    env = {"STUDIO_MODEL": "/env/model", "STUDIO_PORT": "7000", "STUDIO_PRELOAD": "true", "STUDIO_DEVICE": "cpu",
           "STUDIO_MAX_TEXT_CHARS": "99", "STUDIO_SHARE": "0"}
    s = Settings.from_args([], env=env)
    assert s.model == "/env/model" and s.port == 7000 and s.preload and s.device == "cpu"
    assert s.max_text_chars == 99 and s.share is False
    assert Settings.from_args(["--port", "7001"], env=env).port == 7001


@pytest.mark.parametrize("argv, env, message", [
    (["--auth", "nopassword"], {}, "USER:PASS"),
    (["--device", "tpu"], {}, "invalid choice"),
    ([], {"STUDIO_DEVICE": "tpu"}, "STUDIO_DEVICE: invalid choice 'tpu'"),
    ([], {"STUDIO_PORT": "abc"}, "STUDIO_PORT: expected a whole number, got 'abc'"),
    ([], {"STUDIO_PORT": "70000"}, "STUDIO_PORT: must be between 1 and 65535"),
    ([], {"STUDIO_SHARE": "maybe"}, "STUDIO_SHARE: expected 1/true/yes/on or 0/false/no/off"),
    ([], {"STUDIO_MAX_UPLOAD_MB": "-1"}, "STUDIO_MAX_UPLOAD_MB: must be between"),
    (["--max-text-chars", "0"], {}, "must be between 1 and 100000"),
    ([], {"STUDIO_AUTH": "@/no/such/file"}, "cannot read the credentials file"),
])
def test_bad_values_exit_with_status_2_and_a_clear_message(argv, env, message, capsys):
    with pytest.raises(SystemExit) as caught:
        Settings.from_args(argv, env=env)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_credentials_can_come_from_a_file(tmp_path):
    secret = tmp_path / "auth.txt"
    secret.write_text("ann:s3cret\n")
    assert Settings.from_args(["--auth", f"@{secret}"], env={}).auth == ("ann", "s3cret")
    assert Settings.from_args([], env={"STUDIO_AUTH": "bob:pw"}).auth == ("bob", "pw")


def test_app_exits_2_on_a_bad_environment_value(tmp_path):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, str(root / "app.py")], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "STUDIO_PORT": "abc"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "STUDIO_PORT" in result.stderr and "Traceback" not in result.stderr


def test_help_describes_auto_dtype_as_it_behaves(capsys):
    with pytest.raises(SystemExit):
        Settings.from_args(["--help"], env={})
    assert "natively" in capsys.readouterr().out


def test_app_refuses_to_expose_the_studio_without_auth(tmp_path):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, str(root / "app.py"), "--host", "0.0.0.0"], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path, env={**os.environ, "STUDIO_SHARE": "0"})
    assert result.returncode == 2
    assert "refusing to start" in result.stderr and "--allow-anonymous" in result.stderr
    assert "raw original recordings" in result.stderr and "Traceback" not in result.stderr
