"""Settings precedence: flag > TRACKOPS_* env > config file > MLflow env > default."""

import pytest

from trackops.config import DEFAULT_ARTIFACTS_DESTINATION, DEFAULT_BACKEND_STORE_URI, resolve_settings
from trackops.errors import ExitCode, NotFoundError, UsageError


def write_config(tmp_path, text):
    path = tmp_path / "trackops.toml"
    path.write_text(text)
    return str(path)


def test_defaults_are_mlflows():
    s = resolve_settings({}, env={})
    assert (s.backend_store_uri, s.artifacts_destination, s.host, s.port) == (
        DEFAULT_BACKEND_STORE_URI, DEFAULT_ARTIFACTS_DESTINATION, "127.0.0.1", 5000)
    assert s.sources["backend_store_uri"] == "default"


def test_flag_beats_env_beats_file_beats_mlflow_env(tmp_path):
    cfg = write_config(tmp_path, '[trackops]\nbackend_store_uri = "sqlite:///file.db"\nport = 6000\n')
    env = {"TRACKOPS_BACKEND_STORE_URI": "sqlite:///env.db", "MLFLOW_BACKEND_STORE_URI": "sqlite:///mlflow-env.db"}
    assert resolve_settings({"backend_store_uri": "sqlite:///flag.db"}, config_file=cfg, env=env).backend_store_uri == "sqlite:///flag.db"
    s = resolve_settings({}, config_file=cfg, env=env)
    assert s.backend_store_uri == "sqlite:///env.db" and s.sources["backend_store_uri"] == "env TRACKOPS_BACKEND_STORE_URI"
    s = resolve_settings({}, config_file=cfg, env={"MLFLOW_BACKEND_STORE_URI": "sqlite:///mlflow-env.db"})
    assert s.backend_store_uri == "sqlite:///file.db" and s.port == 6000
    s = resolve_settings({}, env={"MLFLOW_BACKEND_STORE_URI": "sqlite:///mlflow-env.db"})
    assert s.backend_store_uri == "sqlite:///mlflow-env.db"


def test_config_file_from_trackops_config_env(tmp_path):
    cfg = write_config(tmp_path, 'artifacts-destination = "s3://bucket/prefix"\n')
    s = resolve_settings({}, env={"TRACKOPS_CONFIG": cfg})
    assert s.artifacts_destination == "s3://bucket/prefix" and s.config_file == cfg


def test_mlflow_tracking_uri_used_only_when_it_is_a_database():
    assert resolve_settings({}, env={"MLFLOW_TRACKING_URI": "http://tracking:5000"}).backend_store_uri == DEFAULT_BACKEND_STORE_URI
    s = resolve_settings({}, env={"MLFLOW_TRACKING_URI": "postgresql://u@h/db"})
    assert s.backend_store_uri == "postgresql://u@h/db" and s.sources["backend_store_uri"] == "env MLFLOW_TRACKING_URI"


def test_missing_config_file_is_not_found(tmp_path):
    with pytest.raises(NotFoundError) as err:
        resolve_settings({}, config_file=str(tmp_path / "absent.toml"), env={})
    assert err.value.exit_code == ExitCode.NOT_FOUND and err.value.hint


@pytest.mark.parametrize("text, fragment", [
    ("backend_store_uri = ", "not valid TOML"),
    ('colour = "blue"\n', "unknown key(s) colour"),
    ('port = "http"\n', "not a number"),
    ("port = 70000\n", "out of range"),
    ("backend_store_uri = 5\n", "must be a string"),
])
def test_bad_config_file_is_a_usage_error_naming_the_problem(tmp_path, text, fragment):
    with pytest.raises(UsageError) as err:
        resolve_settings({}, config_file=write_config(tmp_path, text), env={})
    assert fragment in err.value.message
