"""The edge's and TLS settings: defaults, TOML, OCCIPY_* variables, flags, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from occipy.config import ConfigError, Settings, load
from occipy.server import cli, edge_limits, uvicorn_config


def test_defaults() -> None:
    settings = Settings()
    assert (settings.max_header_bytes, settings.header_timeout, settings.body_timeout,
            settings.body_total_timeout, settings.max_connections) == (65536, 10.0, 30.0, 120.0, 1000)
    assert settings.log_format == "text" and settings.tls_client_cert == "none"
    assert settings.tls_cert is None and settings.x509_map is None


def test_environment_variables(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    settings = load(environ={
        "OCCIPY_MAX_HEADER_BYTES": "1000", "OCCIPY_HEADER_TIMEOUT": "2.5", "OCCIPY_BODY_TIMEOUT": "3",
        "OCCIPY_BODY_TOTAL_TIMEOUT": "9", "OCCIPY_MAX_CONNECTIONS": "7", "OCCIPY_LOG_FORMAT": "json",
        "OCCIPY_TLS_CERT": str(cert), "OCCIPY_TLS_KEY": str(cert), "OCCIPY_TLS_CLIENT_CA": str(cert),
        "OCCIPY_TLS_CLIENT_CERT": "optional", "OCCIPY_X509_MAP": str(cert),
    })
    assert (settings.max_header_bytes, settings.header_timeout, settings.body_timeout,
            settings.body_total_timeout, settings.max_connections) == (1000, 2.5, 3.0, 9.0, 7)
    assert settings.log_format == "json" and settings.tls_client_cert == "optional"
    assert settings.tls_cert == cert and settings.x509_map == cert
    limits = edge_limits(settings)
    assert (limits.max_header_bytes, limits.header_timeout, limits.max_connections) == (1000, 2.5, 7)


def test_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "occipy.toml"
    path.write_text('max_header_bytes = 4096\nheader_timeout = 1.5\nlog_format = "json"\n')
    settings = load(config_file=str(path), environ={})
    assert settings.max_header_bytes == 4096 and settings.header_timeout == 1.5 and settings.log_format == "json"


@pytest.mark.parametrize(("environ", "message"), [
    ({"OCCIPY_LOG_FORMAT": "xml"}, "log_format: 'xml' is not one of text, json"),
    ({"OCCIPY_TLS_CLIENT_CERT": "maybe"}, "tls_client_cert: 'maybe' is not one of"),
    ({"OCCIPY_MAX_HEADER_BYTES": "0"}, "max_header_bytes: must be greater than 0"),
    ({"OCCIPY_BODY_TIMEOUT": "-1"}, "body_timeout: must be greater than 0"),
    ({"OCCIPY_HEADER_TIMEOUT": "soon"}, "header_timeout: 'soon' is not a valid float"),
    ({"OCCIPY_TLS_CERT": "/nonexistent.pem"}, "give both"),
    ({"OCCIPY_TLS_CERT": "/nonexistent.pem", "OCCIPY_TLS_KEY": "/nonexistent.key"}, "is not a readable file"),
    ({"OCCIPY_TLS_CLIENT_CERT": "required"}, "client certificates need HTTPS"),
])
def test_refused_settings_name_themselves(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(environ=environ)


def test_the_flags_are_there() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    for flag in ("--max-header-bytes", "--header-timeout", "--body-timeout", "--body-total-timeout",
                 "--max-connections", "--log-format", "--tls-cert", "--tls-key", "--tls-client-ca",
                 "--tls-client-cert", "--x509-map"):
        assert flag in result.output, flag


def test_a_bad_flag_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--data-dir", str(tmp_path), "--max-connections", "0"])
    assert result.exit_code == 1 and "max_connections: must be greater than 0" in result.output


def test_an_unusable_certificate_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    settings = load(environ={"OCCIPY_TLS_CERT": str(bad), "OCCIPY_TLS_KEY": str(bad)})
    with pytest.raises(ConfigError, match="cannot use the TLS certificate"):
        uvicorn_config(settings, None)  # type: ignore[arg-type]
