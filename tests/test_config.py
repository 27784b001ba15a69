"""Strict config loading: unknown keys, wrong types and out-of-range values are errors."""

import pytest

from clapsweep.config import FrontendConfig, TrainConfig, expand_env, from_dict, load
from clapsweep.errors import ConfigError


def test_defaults_are_the_papers():
    f = FrontendConfig()
    assert (f.sample_rate, f.n_fft, f.hop_length, f.n_mels, f.f_min, f.f_max) == (
        44100,
        1024,
        320,
        64,
        50.0,
        14000.0,
    )
    assert f.clip_samples == 220500


@pytest.mark.parametrize(
    "data, message",
    [
        ({"bta": 0.3}, "bta: unknown key"),
        ({"beta": 1.5}, "beta: expected a value in [0.0, 1.0], got 1.5"),
        ({"batch_size": "64"}, "batch_size: expected an integer, got str '64'"),
        ({"batch_size": 2.5}, "batch_size: expected an integer"),
        ({"channels_last": 1}, "channels_last: expected true or false"),
        ({"soft_target": "kl"}, "soft_target: expected one of 'paper', 'normalized', 'softmax'"),
    ],
)
def test_strict_errors(data, message):
    with pytest.raises(ConfigError) as e:
        from_dict(TrainConfig, data)
    assert message in str(e.value)


def test_int_accepted_for_float():
    assert from_dict(TrainConfig, {"lr": 1}).lr == 1.0


def test_env_expansion(monkeypatch):
    monkeypatch.setenv("DATA", "/d")
    assert expand_env({"a": ["${DATA}/x", "${NOPE:-def}"]}) == {"a": ["/d/x", "def"]}
    monkeypatch.delenv("NOPE", raising=False)
    with pytest.raises(ConfigError, match="a: environment variable NOPE is not set"):
        expand_env({"a": "${NOPE}"})


def test_load_names_the_file(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text("epochs: 0\n")
    with pytest.raises(ConfigError, match=r"t.yaml: epochs: expected a value in \[1, inf\]"):
        load(TrainConfig, p)
    with pytest.raises(ConfigError, match="config file not found"):
        load(TrainConfig, tmp_path / "missing.yaml")


def test_unreadable_config_messages(tmp_path, capsys):
    from clapsweep.cli import main

    wav = tmp_path / "clip.yaml"
    wav.write_bytes(b"\xff\xfe\x00garbage")
    main(["run", str(wav)])
    assert "clip.yaml: not a UTF-8 text file" in capsys.readouterr().err
    main(["run", str(tmp_path)])
    assert "is a folder; give the sweep or job YAML file itself" in capsys.readouterr().err
