"""identity/x509.py: RFC 4514 parsing, the mapping file, the authenticator and its factory."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from occipy.config import ConfigError, Settings
from occipy.errors import Unauthorized
from occipy.identity.base import Credentials, Principal
from occipy.identity.x509 import (
    DnError,
    X509Authenticator,
    attribute,
    from_settings,
    load_map,
    parse_dn,
    parse_map,
)


def test_parse_dn_normalises_types_and_spaces() -> None:
    assert parse_dn("CN=alice,O=Example") == parse_dn("cn=alice, o = Example")
    assert parse_dn("CN=alice,O=Example") != parse_dn("CN=Alice,O=Example")  # values compare exactly
    assert parse_dn("CN=alice,O=Example") != parse_dn("O=Example,CN=alice")  # order matters


def test_parse_dn_undoes_escapes() -> None:
    dn = parse_dn(r"CN=Smith\, John,O=A\2bB,OU=\ lead\ ")
    assert attribute(dn, "CN") == "Smith, John"
    assert attribute(dn, "o") == "A+B"
    assert attribute(dn, "OU") == " lead "
    assert parse_dn(r"CN=caf\C3\A9") == parse_dn("CN=café")


def test_multi_valued_rdns_compare_in_any_order() -> None:
    assert parse_dn("CN=a+UID=1,O=x") == parse_dn("UID=1+CN=a,O=x")


def test_the_first_occurrence_is_the_most_specific() -> None:
    assert attribute(parse_dn("CN=leaf,OU=team,O=org,DC=example,DC=com"), "DC") == "example"
    assert attribute(parse_dn("CN=x"), "O") is None


@pytest.mark.parametrize("text", ["", "   ", "CN", "=x", "CN=a,", r"CN=a\\", r"CN=\ff\fe"])
def test_bad_dns_are_refused(text: str) -> None:
    with pytest.raises(DnError):
        parse_dn(text if text != r"CN=a\\" else "CN=a\\")


MAP = {
    "subjects": {
        "CN=alice,O=Example": {"user": "alice", "tenant": "t1", "roles": ["member"]},
        "CN=root,O=Example": {"user": "root", "roles": ["admin"], "issuer": "CN=Root CA"},
    },
    "derive": {"user": "CN", "tenant": "O", "roles": ["reader"], "issuers": ["CN=Test CA,O=Example"]},
}


def authenticate(mapping: dict[str, object], subject: str | None, issuer: str | None = None) -> Principal | None:
    authenticator = X509Authenticator(parse_map(mapping))
    return asyncio.run(authenticator.authenticate(Credentials(client_subject=subject, client_issuer=issuer)))


def test_a_listed_subject_is_its_entry() -> None:
    assert authenticate(MAP, "CN=alice, O=Example", "CN=Anyone") == Principal(
        user="alice", tenant="t1", roles=frozenset({"member"}), method="x509")


def test_an_entry_with_an_issuer_needs_that_issuer() -> None:
    assert authenticate(MAP, "CN=root,O=Example", "CN=Root CA") == Principal(
        user="root", tenant="default", roles=frozenset({"admin"}), method="x509")
    with pytest.raises(Unauthorized):
        authenticate(MAP, "CN=root,O=Example", "CN=Test CA,O=Example")


def test_an_unlisted_subject_is_derived() -> None:
    assert authenticate(MAP, "CN=bob,OU=dev,O=Acme", "CN=Test CA,O=Example") == Principal(
        user="bob", tenant="Acme", roles=frozenset({"reader"}), method="x509")


def test_derive_without_the_tenant_attribute_is_the_default_tenant() -> None:
    mapping = {"derive": {"user": "CN", "tenant": "O"}}
    assert authenticate(mapping, "CN=solo") == Principal(user="solo", tenant="default", method="x509")


@pytest.mark.parametrize(("mapping", "subject", "issuer"), [
    (MAP, "CN=bob,O=Acme", "CN=Other CA"),  # derive is limited to its issuers
    ({"subjects": {}}, "CN=bob,O=Acme", None),  # no rule for unlisted subjects
    ({"derive": {"user": "UID"}}, "CN=bob,O=Acme", None),  # the attribute is missing
    (MAP, "this is no DN", "CN=Test CA,O=Example"),
])
def test_refusals_are_unauthorized_and_say_nothing_more(mapping: dict[str, object], subject: str,
                                                        issuer: str | None) -> None:
    with pytest.raises(Unauthorized) as raised:
        authenticate(mapping, subject, issuer)
    assert raised.value.message == "the client certificate is not accepted here"
    assert raised.value.status == 401


def test_no_certificate_is_not_this_method() -> None:
    assert authenticate(MAP, None) is None


def test_challenges_are_none_and_close_is_harmless() -> None:
    authenticator = X509Authenticator(parse_map(MAP))
    assert authenticator.name == "x509" and list(authenticator.challenges()) == []
    asyncio.run(authenticator.close())


@pytest.mark.parametrize(("mapping", "message"), [
    ({"users": {}}, "unknown tables users"),
    ({"subjects": {"CN=a": {"tenant": "t"}}}, "user is required"),
    ({"subjects": {"CN=a": {"user": "a", "roles": ["owner"]}}}, "unknown roles owner"),
    ({"subjects": {"CN=a": {"user": "a", "roles": "member"}}}, "roles must be a list"),
    ({"subjects": {"CN=a": {"user": "a", "group": "x"}}}, "unknown keys group"),
    ({"subjects": {"not a dn": {"user": "a"}}}, "is not TYPE=value"),
    ({"subjects": {"CN=a": "alice"}}, "must be a table"),
    ({"derive": {"tenant": "O"}}, "user is required"),
    ({"derive": {"user": "CN", "issuers": "CN=x"}}, "issuers must be a list"),
    ({"derive": {"user": ""}}, "non-empty string"),
])
def test_mapping_errors_name_the_entry(mapping: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_map(mapping, "x509.toml")


def test_load_map_reads_toml(tmp_path: Path) -> None:
    path = tmp_path / "x509.toml"
    path.write_text('[subjects."CN=alice,O=Example"]\nuser = "alice"\n\n[derive]\nuser = "CN"\n')
    mapping = load_map(path)
    assert parse_dn("CN=alice,O=Example") in mapping.subjects
    assert mapping.derive is not None and mapping.derive.user_attribute == "CN"
    path.write_text("[subjects\n")
    with pytest.raises(ConfigError, match="cannot read the x509 map"):
        load_map(path)


def test_from_settings_needs_a_map_and_client_certificates(tmp_path: Path) -> None:
    path = tmp_path / "x509.toml"
    path.write_text('[derive]\nuser = "CN"\n')
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    with pytest.raises(ConfigError, match="--x509-map"):
        from_settings(Settings())
    with pytest.raises(ConfigError, match="--tls-client-cert"):
        from_settings(replace(Settings(), x509_map=path))
    authenticator = from_settings(replace(Settings(), x509_map=path, tls_client_ca=ca, tls_client_cert="required"))
    assert isinstance(authenticator, X509Authenticator)
