"""The `occi` command: a click group with one function per verb, over `occipy.client.Client`.

Errors become one line on stderr and a non-zero exit code, never a traceback: every OcciError
is turned into a click exception here (`_OcciGroup.invoke`), with its own wording and exit
code for a server that is down (5), a 404 (3) and a 409 (4). Tests pass their own Client as
`obj`. Imports click, `occipy.client`, `occipy.model` and this package; never the server side.
"""

from __future__ import annotations

import ssl
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import click
from click.shell_completion import CompletionItem, get_completion_class

from occipy import __version__, errors
from occipy.cli.config import AUTH_METHODS, MEDIA_TYPES, OUTPUTS, Settings, load_settings
from occipy.cli.output import Printer, short
from occipy.client import (
    AttributeDef,
    BasicAuth,
    BearerToken,
    Client,
    ClientCertificate,
    CredentialRefused,
    Entity,
    KeystoneAuth,
    KeystoneToken,
    LinkSpec,
    Model,
    ServerUnreachable,
    WaitTimeout,
)
from occipy.model.category import AttributeValue
from occipy.model.state import TRANSITIONS

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])

# Exit codes (docs/cli.md): 1 any other OCCI error, 2 usage (click), 3 not found, 4 conflict,
# 5 server unreachable, 6 wait timed out.
_EXIT_CODES: tuple[tuple[type[errors.OcciError], int, str], ...] = (
    (ServerUnreachable, 5, "server unreachable"),
    (WaitTimeout, 6, "timed out"),
    (errors.NotFound, 3, "not found"),
    (errors.ActionNotAllowed, 4, "action not allowed now"),
    (errors.Conflict, 4, "conflict"),
    (errors.Unauthorized, 1, "authentication failed"),
    (errors.ImmutableAttribute, 1, "immutable attribute"),
    (errors.Forbidden, 1, "forbidden"),
    (errors.UnknownCategory, 1, "unknown category"),
    (errors.InvalidAttribute, 1, "invalid attribute"),
    (errors.BackendError, 1, "the cloud failed"),
    (errors.BackendUnavailable, 1, "service unavailable"),
    (errors.NotSupported, 1, "not supported by the server"),
    (errors.MethodNotAllowed, 1, "not allowed here"),
)


class OcciCommandError(click.ClickException):
    """An OcciError as the CLI reports it: `Error: <what>: <server's message>`, exit code per class."""

    def __init__(self, error: errors.OcciError) -> None:
        code, label = 1, ""
        for cls, exit_code, text in _EXIT_CODES:
            if isinstance(error, cls):
                code, label = exit_code, text
                break
        message = " ".join(str(error.message).split()) or type(error).__name__
        if isinstance(error, ServerUnreachable):
            label = ""  # the message already says it
        super().__init__(f"{label}: {message}" if label else message)
        # click declares exit_code on the class; each OCCI error class has its own (docs/cli.md).
        self.exit_code = code  # type: ignore[misc]
        self.error = error


class _OcciGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except errors.OcciError as exc:
            if isinstance(exc, errors.Unauthorized) and not isinstance(exc, CredentialRefused):
                exc = _explain_401(exc, ctx.obj)
            raise OcciCommandError(exc) from None


def _credential(auth: object) -> str:
    if isinstance(auth, BasicAuth):
        return f"the password of user {auth.username}"
    if isinstance(auth, KeystoneAuth):
        return f"the Keystone token of user {auth.username}" + (f" (project {auth.project})" if auth.project else "")
    if isinstance(auth, KeystoneToken):
        return "the Keystone token"
    if isinstance(auth, BearerToken):
        return "the bearer token"
    return "the client certificate"


def _explain_401(error: errors.Unauthorized, state: object) -> errors.Unauthorized:
    """A 401 that says which credential the server refused, or which methods it accepts."""
    client = (state.client_override or state._client) if isinstance(state, State) else None
    auth = client.auth if client is not None else None
    has_cert = isinstance(state, State) and bool(state.settings.cert)
    schemes = sorted({c.split(None, 1)[0] for c in error.challenges if c.strip()})
    offered = f"; the server accepts {', '.join(schemes)} (see --auth)" if schemes else ""
    if auth is None and not has_cert:
        return errors.Unauthorized(f"no credentials given ({error.message}){offered}", error.challenges)
    if isinstance(auth, KeystoneAuth) and auth.url is None and "Keystone" not in schemes:
        return errors.Unauthorized(f"the server names no Keystone to get a token from{offered}", error.challenges)
    return errors.Unauthorized(f"the server refused {_credential(auth)} ({error.message})", error.challenges)


@dataclass
class State:
    """What every verb gets: the settings, the printer and a client made on first use."""

    settings: Settings
    client_override: Client | None = None
    _client: Client | None = field(default=None, init=False)
    close: list[Callable[[], None]] = field(default_factory=list)

    @property
    def printer(self) -> Printer:
        return Printer(self.settings.output)

    @property
    def client(self) -> Client:
        if self.client_override is not None:
            return self.client_override
        if self._client is None:
            self._client = make_client(self.settings)
            self.close.append(self._client.close)
        return self._client

    @property
    def model(self) -> Model:
        return self.client.model


def _token(settings: Settings, method: str) -> str:
    """The token of --token-file (it wins), else of --token / OCCI_OIDC_TOKEN / OCCI_TOKEN."""
    if settings.token_file:
        try:
            return BearerToken.from_file(settings.token_file).token
        except errors.BadRequest as exc:
            raise click.UsageError(exc.message) from None
    if settings.token:
        return settings.token
    sources = "--token, --token-file, OCCI_OIDC_TOKEN or OCCI_TOKEN" if method == "oidc" else \
        "--token, --token-file or OCCI_TOKEN"
    raise click.UsageError(f"--auth {method} needs a token: {sources}")


def _user_password(settings: Settings, method: str) -> tuple[str, str]:
    """User name and password; the password is asked for on a terminal when not given."""
    if not settings.username:
        raise click.UsageError(f"--auth {method} needs a user name: --user or OCCI_USERNAME")
    if settings.password is not None:
        return settings.username, settings.password
    if sys.stdin.isatty():
        return settings.username, str(click.prompt(f"Password for {settings.username}", hide_input=True))
    raise click.UsageError(f"no password for user {settings.username}: set OCCI_PASSWORD or --password")


def make_auth(settings: Settings) -> BasicAuth | BearerToken | KeystoneToken | KeystoneAuth | None:
    """The SDK credential for `--auth` (docs/cli.md); without it, what was given decides."""
    method = settings.auth
    if method is None:
        if settings.token or settings.token_file:
            return BearerToken(_token(settings, "oidc"))
        if settings.username:
            return BasicAuth(settings.username, settings.password or "")
        return None
    if method == "basic":
        return BasicAuth(*_user_password(settings, method))
    if method == "oidc":
        return BearerToken(_token(settings, method))
    if method == "token":
        return KeystoneToken(_token(settings, method))
    if method == "keystone":
        user, password = _user_password(settings, method)
        return KeystoneAuth(user, password, project=settings.project,
                            user_domain=settings.user_domain or "Default",
                            project_domain=settings.project_domain or "Default", url=settings.keystone_url)
    if not settings.cert:  # x509
        raise click.UsageError("--auth x509 needs a client certificate: --cert (and --key) or OCCI_CERT")
    return None


def make_client(settings: Settings) -> Client:
    """A Client from the settings; a missing endpoint or unreadable certificate is a usage error."""
    if not settings.endpoint:
        raise click.UsageError("no endpoint: give --endpoint, set OCCI_ENDPOINT, or put endpoint in the config file")
    auth = make_auth(settings)
    cert = ClientCertificate(settings.cert, settings.key) if settings.cert else None
    verify: bool | str = False if settings.insecure else (settings.ca or True)
    try:
        return Client(settings.endpoint, auth=auth, cert=cert, verify=verify, media_type=settings.media_type,
                      timeout=settings.timeout)
    except (OSError, ssl.SSLError) as exc:
        raise click.UsageError(f"cannot load the TLS certificate or CA: {exc}") from None


pass_state = click.make_pass_decorator(State)


# ---- shell completion ---------------------------------------------------------------------------


def _completion_model(ctx: click.Context) -> Model | None:
    root = ctx.find_root()
    # Completion parses without running the group callback: obj is what the caller passed.
    state = root.obj if isinstance(root.obj, State) else None
    try:
        if isinstance(root.obj, Client):
            return root.obj.model
        if state is None:
            params = root.params
            flags = {k: params.get(k) for k in ("endpoint", "username", "password", "token", "token_file", "auth",
                                                 "project", "user_domain", "project_domain", "keystone_url",
                                                 "cert", "key", "ca", "media_type")}
            settings = load_settings(flags, config_file=params.get("config_file"), profile=params.get("profile"))
            if not settings.endpoint:
                return None
            with make_client(Settings(**{**_asdict(settings), "timeout": 3.0})) as client:
                return client.model
        return state.model
    except (errors.OcciError, click.ClickException, OSError):
        return None  # completion never fails loudly


def _asdict(settings: Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in Settings.__dataclass_fields__}


def _complete(names: Callable[[Model], Iterable[tuple[str, str | None]]]) -> Callable[
        [click.Context, click.Parameter, str], list[CompletionItem]]:
    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        model = _completion_model(ctx)
        if model is None:
            return []
        items: dict[str, str | None] = {}
        for name, helptext in names(model):
            if name.startswith(incomplete) and name not in items:
                items[name] = helptext
        return [CompletionItem(name, help=helptext) for name, helptext in sorted(items.items())]
    return complete


def _short_names(categories: Iterable[Any]) -> Iterable[tuple[str, str | None]]:
    for category in categories:
        yield category.term, category.title
        yield category.type_id, category.title


complete_kind = _complete(lambda m: _short_names(k for k in m.kinds.values() if k.location))
complete_mixin = _complete(lambda m: _short_names(m.mixins.values()))
complete_category = _complete(lambda m: _short_names([*(k for k in m.kinds.values() if k.location),
                                                      *m.mixins.values()]))
complete_action = _complete(lambda m: _short_names(m.actions.values()))


def complete_attribute(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    model = _completion_model(ctx)
    if model is None:
        return []
    kind = ctx.params.get("kind")
    names: set[str] = set()
    kinds = [kind] if isinstance(kind, str) else list(model.kinds)
    for name in kinds:
        try:
            names.update(model.attribute_defs(model.kind(name).type_id))
        except errors.OcciError:
            continue
    return [CompletionItem(n + "=") for n in sorted(names) if n.startswith(incomplete)]


# ---- helpers ---------------------------------------------------------------------------------------


def _pairs(values: Sequence[str], option: str) -> list[tuple[str, str]]:
    result = []
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected name=value, got {value!r}", param_hint=option)
        result.append((name.strip(), rest))
    return result


def _attributes(model: Model, defs: Mapping[str, AttributeDef], pairs: Sequence[str],
                option: str = "--attr") -> dict[str, AttributeValue]:
    """`--attr name=value` pairs as typed values (per the discovered definitions)."""
    return {name: model.value_from_text(defs.get(name), raw) for name, raw in _pairs(pairs, option)}


def _link_spec(value: str) -> LinkSpec:
    """`--link TARGET[:KIND]`; a colon inside a URL (scheme, port) is not a kind separator."""
    target, sep, kind = value.rpartition(":")
    if sep and target and kind and "/" not in kind and not kind.isdigit():
        return LinkSpec(target, kind=kind)
    return LinkSpec(value)


def _expected_state(kind: str, action_id: str) -> str | None:
    """Where an action leads, when the kind's state table says so unambiguously (GFD.224 §3)."""
    targets = {to for (k, _from, a), to in TRANSITIONS.items() if k == kind and a == action_id}
    return targets.pop() if len(targets) == 1 else None


def _wait(state: State, location: str, wanted: str | None, timeout: float) -> Entity:
    printer = state.printer
    with printer.progress(location) as progress:
        entity = state.client.wait_for(location, state=wanted, timeout=timeout, progress=progress)
    if printer.err.is_terminal:  # the spinner is gone: say where it ended (plain progress already did)
        current, _ = state.model.state_of(entity)
        printer.note(f"{short(location)}: {current or 'done'}")
    return entity


def _set_output(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    state = ctx.find_object(State)
    if value is not None and state is not None:
        state.settings = replace(state.settings, output=value)


def _output_option(f: F) -> F:
    """`-o/--output` after the verb too (`occi show URL -o json`)."""
    return click.option("--output", "-o", type=click.Choice(OUTPUTS), expose_value=False, callback=_set_output,
                        help="table, json or occi (overrides the global option).")(f)


def _wait_options(f: F) -> F:
    f = click.option("--timeout", "wait_timeout", type=float, default=300.0, show_default=True,
                     help="Seconds to wait with --wait.")(f)
    f = click.option("--state", "wanted_state", help="With --wait: the state to wait for.")(f)
    f = click.option("--wait", is_flag=True, help="Follow the operation until it ends; show progress.")(f)
    return f


# ---- the group -------------------------------------------------------------------------------------


@click.group(cls=_OcciGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--endpoint", "-e", metavar="URL", help="Server base URL [env OCCI_ENDPOINT].")
@click.option("--profile", "-p", help="Profile from the config file [env OCCI_PROFILE].")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Config file [env OCCI_CONFIG; default ~/.config/occi/config.toml].")
@click.option("--user", "-u", "username", help="HTTP Basic user name [env OCCI_USERNAME].")
@click.option("--password", help="HTTP Basic password [env OCCI_PASSWORD; prefer the variable].")
@click.option("--auth", type=click.Choice(AUTH_METHODS),
              help="basic, token (Keystone token as X-Auth-Token), oidc (bearer token), keystone (user and "
                   "password for the server's Keystone) or x509 [env OCCI_AUTH; default: from what is given].")
@click.option("--token", help="Token: bearer (OIDC) or, with --auth token, Keystone [env OCCI_TOKEN, OCCI_OIDC_TOKEN].")
@click.option("--token-file", type=click.Path(dir_okay=False), help="Read the token from this file [env OCCI_TOKEN_FILE].")
@click.option("--project", help="Keystone project (default: the user's only one) [env OCCI_PROJECT].")
@click.option("--user-domain", help="Keystone user domain [env OCCI_USER_DOMAIN; default Default].")
@click.option("--project-domain", help="Keystone project domain [env OCCI_PROJECT_DOMAIN; default Default].")
@click.option("--keystone-url", metavar="URL",
              help="Keystone URL (default: the one the server names in its 401) [env OCCI_KEYSTONE_URL].")
@click.option("--cert", type=click.Path(dir_okay=False), help="X.509 client certificate, PEM [env OCCI_CERT].")
@click.option("--key", type=click.Path(dir_okay=False), help="Key of the client certificate [env OCCI_KEY].")
@click.option("--ca", type=click.Path(dir_okay=False), help="CA bundle to verify the server [env OCCI_CA].")
@click.option("--insecure", is_flag=True, default=None, help="Do not verify the server's TLS certificate.")
@click.option("--output", "-o", type=click.Choice(OUTPUTS),
              help="table (default), json for scripts, occi for the text rendering [env OCCI_OUTPUT].")
@click.option("--media-type", type=click.Choice(MEDIA_TYPES),
              help="Force the rendering spoken to the server (default: JSON if offered) [env OCCI_MEDIA_TYPE].")
@click.option("--http-timeout", "timeout", type=float, help="Seconds per HTTP request [env OCCI_TIMEOUT].")
@click.version_option(__version__, prog_name="occi")
@click.pass_context
def cli(ctx: click.Context, /, profile: str | None, config_file: str | None, **flags: Any) -> None:
    """Manage resources on an OCCI 1.2 (or 1.1) server.

    Kinds and mixins are named by term where unambiguous (compute, debian-12), by
    `tag#term` (os_tpl#debian-12) or by full type id. Locations are URLs or paths.
    """
    override = ctx.obj if isinstance(ctx.obj, Client) else None
    try:
        settings = load_settings(flags, config_file=config_file, profile=profile)
    except errors.OcciError as exc:
        raise click.UsageError(exc.message) from None
    state = State(settings=settings, client_override=override)
    ctx.obj = state
    ctx.call_on_close(lambda: [close() for close in state.close])


# ---- discovery -------------------------------------------------------------------------------------


@cli.command()
@click.argument("terms", nargs=-1)
@click.option("--kinds", "show_kinds", is_flag=True, help="Only kinds.")
@click.option("--mixins", "show_mixins", is_flag=True, help="Only mixins.")
@click.option("--actions", "show_actions", is_flag=True, help="Only actions.")
@click.option("--scheme", help="Only categories whose scheme contains this text.")
@click.option("--applies", "applies_to", shell_complete=complete_kind,
              help="Only mixins that may be applied to this kind (and kinds/actions of it).")
@click.option("--depends", "depends_on", shell_complete=complete_mixin,
              help="Only mixins that depend on this one (e.g. os_tpl: the OS templates).")
@_output_option
@pass_state
def discover(state: State, terms: tuple[str, ...], show_kinds: bool, show_mixins: bool, show_actions: bool,
             scheme: str | None, applies_to: str | None, depends_on: str | None) -> None:
    """Show the server's kinds, mixins and actions (the query interface), with filters.

    TERMS keep only categories whose term or type id contains one of them.
    """
    model = state.model
    wanted = {"kind": show_kinds, "mixin": show_mixins, "action": show_actions}
    if not any(wanted.values()):
        wanted = dict.fromkeys(wanted, True)
    if depends_on:
        wanted = {"kind": False, "mixin": True, "action": False}
    categories: list[Any] = []
    if wanted["kind"]:
        categories += list(model.kinds.values())
    if wanted["mixin"]:
        categories += list(model.mixins.values())
    if wanted["action"]:
        categories += list(model.actions.values())
    if terms:
        categories = [c for c in categories if any(t in c.type_id for t in terms)]
    if scheme:
        categories = [c for c in categories if scheme in c.scheme]
    if depends_on:
        parent = model.mixin(depends_on).type_id
        categories = [c for c in categories if parent in model.depends_closure(c.depends)[0:] and c.type_id != parent]
    if applies_to:
        kind = model.kind(applies_to)
        ancestors = model.ancestors(kind.type_id)
        offered = set(model.action_ids(kind.type_id))
        categories = [
            c for c in categories
            if (c.type_id in ancestors) or (c.type_id in offered)
            or (c.type_id in model.mixins and (not model.mixins[c.type_id].applies
                                                or any(a in ancestors for a in model.mixins[c.type_id].applies)))
        ]
    state.printer.categories(categories, model)


# ---- reading ---------------------------------------------------------------------------------------


@cli.command(name="list")
@click.argument("category", shell_complete=complete_category)
@click.option("--filter", "-f", "filters", multiple=True, metavar="NAME=VALUE",
              help="Only entities with this attribute value (repeatable).")
@click.option("--category", "-c", "categories", multiple=True, shell_complete=complete_category,
              help="Only entities of this kind or mixin too (repeatable).")
@click.option("--quiet", "-q", is_flag=True, help="Only the locations (no entity is read).")
@click.option("--page-size", type=click.IntRange(min=0), help="Entities per page (0: no pagination).")
@_output_option
@pass_state
def list_command(state: State, category: str, filters: tuple[str, ...], categories: tuple[str, ...],
                 quiet: bool, page_size: int | None) -> None:
    """List the entities of a KIND or MIXIN collection (every page)."""
    model = state.model
    found = model.category(category)
    defs: dict[str, AttributeDef] = {}
    if found.type_id in model.kinds:
        defs = model.attribute_defs(found.type_id)
    else:
        for kind in model.kinds:
            defs.update({k: v for k, v in model.attribute_defs(kind, [found.type_id]).items() if k not in defs})
    values = _attributes(model, defs, filters, "--filter")
    if quiet:
        state.printer.locations(state.client.list_locations(found.type_id, categories=categories, attributes=values,
                                                            page_size=page_size))
    else:
        state.printer.entities(state.client.list_entities(found.type_id, categories=categories, attributes=values,
                                                          page_size=page_size), model)


@cli.command()
@click.argument("locations", nargs=-1, required=True)
@_output_option
@pass_state
def show(state: State, locations: tuple[str, ...]) -> None:
    """Show entities (URL or path), with their links and actions."""
    for location in locations:
        state.printer.entity(state.client.get(location), state.model)


@cli.command()
@click.argument("location")
@click.option("--state", "wanted_state", help="The state to wait for (default: the end of the operation).")
@click.option("--timeout", "wait_timeout", type=float, default=300.0, show_default=True, help="Seconds to wait.")
@_output_option
@pass_state
def wait(state: State, location: str, wanted_state: str | None, wait_timeout: float) -> None:
    """Wait until an entity's operation ends (or it reaches --state)."""
    state.printer.entity(_wait(state, location, wanted_state, wait_timeout), state.model)


# ---- writing ---------------------------------------------------------------------------------------


@cli.command()
@click.argument("kind", shell_complete=complete_kind)
@click.option("--mixin", "-m", "mixins", multiple=True, shell_complete=complete_mixin,
              help="Mixin to apply, e.g. os_tpl#debian-12 (repeatable).")
@click.option("--attr", "-a", "attrs", multiple=True, metavar="NAME=VALUE", shell_complete=complete_attribute,
              help="Attribute value, e.g. occi.compute.cores=2 (repeatable).")
@click.option("--link", "-l", "links", multiple=True, metavar="TARGET[:KIND]",
              help="Link to TARGET, of link KIND (default from the target: storagelink, networkinterface).")
@click.option("--title", "-t", help="occi.core.title.")
@_wait_options
@_output_option
@pass_state
def create(state: State, kind: str, mixins: tuple[str, ...], attrs: tuple[str, ...], links: tuple[str, ...],
           title: str | None, wait: bool, wanted_state: str | None, wait_timeout: float) -> None:
    """Create a resource of KIND; prints its location (or, with --wait, the resource)."""
    model = state.model
    found = model.kind(kind)
    mixin_ids = [model.mixin(m).type_id for m in mixins]
    values = _attributes(model, model.attribute_defs(found.type_id, mixin_ids), attrs)
    location = state.client.create(found.type_id, mixins=mixin_ids, attributes=values,
                                   links=[_link_spec(link) for link in links], title=title)
    if wait:
        state.printer.note(f"created {location}")
        state.printer.entity(_wait(state, location, wanted_state, wait_timeout), model)
    else:
        state.printer.location(location)


@cli.command()
@click.argument("location")
@click.option("--attr", "-a", "attrs", multiple=True, metavar="NAME=VALUE", help="New value (repeatable).")
@click.option("--mixin", "-m", "mixins", multiple=True, shell_complete=complete_mixin,
              help="Mixin to add (repeatable).")
@click.option("--unset", "unset", multiple=True, metavar="NAME", help="Remove this attribute (implies --replace).")
@click.option("--replace", is_flag=True, help="Full update (PUT): send the whole entity with the changes.")
@_output_option
@pass_state
def update(state: State, location: str, attrs: tuple[str, ...], mixins: tuple[str, ...], unset: tuple[str, ...],
           replace: bool) -> None:
    """Update an entity: partial by default, full with --replace or --unset."""
    model = state.model
    client = state.client
    current = client.get(location)
    mixin_ids = [model.mixin(m).type_id for m in mixins]
    all_mixins = [*current.mixins, *(m for m in mixin_ids if m not in current.mixins)]
    defs = model.attribute_defs(current.kind, all_mixins)
    values = _attributes(model, defs, attrs)
    if replace or unset:
        for name in unset:
            if name not in current.attributes:
                raise click.BadParameter(f"{name} has no value to remove", param_hint="--unset")
        kept = {name: value for name, value in current.attributes.items()
                if name not in unset and (defs.get(name) is None or defs[name].mutable)}
        entity = client.replace(location, attributes={**kept, **values}, mixins=all_mixins)
    else:
        if not values and not mixin_ids:
            raise click.UsageError("nothing to update: give --attr, --mixin or --unset")
        entity = client.update(location, attributes=values, mixins=mixin_ids)
    state.printer.entity(entity, model)


@cli.command()
@click.argument("locations", nargs=-1, required=True)
@_output_option
@pass_state
def delete(state: State, locations: tuple[str, ...]) -> None:
    """Delete entities (resources or links)."""
    for location in locations:
        state.client.delete(location)
        state.printer.note(f"deleted {location}")


@cli.command()
@click.argument("action", shell_complete=complete_action)
@click.argument("location")
@click.option("--attr", "-a", "attrs", multiple=True, metavar="NAME=VALUE",
              help="Action parameter, e.g. method=graceful (repeatable).")
@_wait_options
@_output_option
@pass_state
def action(state: State, action: str, location: str, attrs: tuple[str, ...], wait: bool,
           wanted_state: str | None, wait_timeout: float) -> None:
    """Trigger ACTION (term or type id) on the entity at LOCATION."""
    model = state.model
    client = state.client
    current = client.get(location)
    found = model.action(action, current.kind, current.mixins)
    params = _attributes(model, {a.name: a for a in found.attributes}, attrs)
    entity = client.trigger(location, found.type_id, params)
    if wait:
        target = wanted_state or _expected_state(current.kind, found.type_id)
        entity = _wait(state, entity.location, target, wait_timeout)
    state.printer.entity(entity, model)


@cli.group(cls=_OcciGroup)
def mixin() -> None:
    """Add or remove an entity's mixins; define or undefine user mixins (tags)."""


@mixin.command(name="add")
@click.argument("location")
@click.argument("mixins", nargs=-1, required=True, shell_complete=complete_mixin)
@_output_option
@pass_state
def mixin_add(state: State, location: str, mixins: tuple[str, ...]) -> None:
    """Associate the entity at LOCATION with MIXINS (a new template replaces the old one)."""
    entity = None
    for name in mixins:
        entity = state.client.add_mixin(location, name)
    assert entity is not None  # click requires at least one
    state.printer.entity(entity, state.model)


@mixin.command(name="remove")
@click.argument("location")
@click.argument("mixins", nargs=-1, required=True, shell_complete=complete_mixin)
@_output_option
@pass_state
def mixin_remove(state: State, location: str, mixins: tuple[str, ...]) -> None:
    """Disassociate the entity at LOCATION from MIXINS."""
    entity = None
    for name in mixins:
        entity = state.client.remove_mixin(location, name)
    assert entity is not None  # click requires at least one
    state.printer.entity(entity, state.model)


@mixin.command(name="define")
@click.argument("term")
@click.option("--scheme", help="Scheme ending with '#' (default: <endpoint>/occi/tags#).")
@click.option("--location", "mixin_location", help="Collection path (default: /TERM/).")
@click.option("--title", help="Human-readable title.")
@click.option("--depends", "depends", multiple=True, shell_complete=complete_mixin,
              help="Mixin this one depends on (repeatable).")
@_output_option
@pass_state
def mixin_define(state: State, term: str, scheme: str | None, mixin_location: str | None, title: str | None,
                 depends: tuple[str, ...]) -> None:
    """Define a user mixin (a tag) named TERM."""
    client = state.client
    chosen = scheme or client.endpoint.rstrip("/") + "/occi/tags#"
    created = client.define_mixin(term, chosen, location=mixin_location, title=title, depends=depends)
    state.printer.categories([created], state.model)


@mixin.command(name="undefine")
@click.argument("names", nargs=-1, required=True, shell_complete=complete_mixin)
@_output_option
@pass_state
def mixin_undefine(state: State, names: tuple[str, ...]) -> None:
    """Delete user mixins (the server refuses provider mixins)."""
    for name in names:
        found = state.model.mixin(name)
        state.client.undefine_mixin(found.type_id)
        state.printer.note(f"undefined {found.type_id}")


@cli.command()
@click.argument("source")
@click.argument("target")
@click.option("--kind", "-k", "link_kind", shell_complete=complete_kind,
              help="Link kind (default from the target: storagelink, networkinterface, link).")
@click.option("--mixin", "-m", "mixins", multiple=True, shell_complete=complete_mixin, help="Link mixin (repeatable).")
@click.option("--attr", "-a", "attrs", multiple=True, metavar="NAME=VALUE", help="Link attribute (repeatable).")
@_output_option
@pass_state
def link(state: State, source: str, target: str, link_kind: str | None, mixins: tuple[str, ...],
         attrs: tuple[str, ...]) -> None:
    """Link SOURCE to TARGET; prints the link's location."""
    model = state.model
    client = state.client
    kind_id = model.kind(link_kind).type_id if link_kind else None
    if kind_id is None:
        path = short(client.endpoint.rstrip("/") + "/" + target.lstrip("/")) if "://" not in target else short(target)
        target_kind = model.kind_for_location(path)
        kind_id = model.link_kind_for(target_kind.type_id if target_kind else None)
    mixin_ids = [model.mixin(m).type_id for m in mixins]
    values = _attributes(model, model.attribute_defs(kind_id, mixin_ids), attrs)
    state.printer.location(client.link(source, target, kind=kind_id, mixins=mixin_ids, attributes=values))


@cli.command()
@click.argument("locations", nargs=-1, required=True)
@_output_option
@pass_state
def unlink(state: State, locations: tuple[str, ...]) -> None:
    """Delete links."""
    for location in locations:
        state.client.unlink(location)
        state.printer.note(f"unlinked {location}")


# ---- following the server (issue 12) -----------------------------------------------------------------

EVENT_TYPES = ("created", "updated", "state", "deleted", "operation")


@cli.command()
@click.option("--kind", "-k", "kinds", multiple=True, shell_complete=complete_kind,
              help="Only entities of this kind, or of its sub-kinds (repeatable).")
@click.option("--location", "-l", "locations", multiple=True,
              help="Only this entity (URL or path), or everything below a path ending in / (repeatable).")
@click.option("--operation", "operations", multiple=True, help="Only this operation (id or URL; repeatable).")
@click.option("--type", "-t", "types", multiple=True, type=click.Choice(EVENT_TYPES),
              help="Only events of this type (repeatable).")
@click.option("--last-event-id", help="Resume after this event id (each event shows its id).")
@click.option("--count", "-n", type=click.IntRange(min=1), help="Stop after this many events.")
@click.option("--no-reconnect", is_flag=True, help="Stop when the stream ends instead of reconnecting.")
@_output_option
@pass_state
def events(state: State, kinds: tuple[str, ...], locations: tuple[str, ...], operations: tuple[str, ...],
           types: tuple[str, ...], last_event_id: str | None, count: int | None, no_reconnect: bool) -> None:
    """Follow the server's changes as they happen (GET /-/events), until Ctrl-C or --count.

    Each line is one change: an entity created, updated, changing state or deleted, or an
    operation's progress. With -o json, one JSON object a line. After a broken connection it
    reconnects and resumes where it was; "lost" says the server no longer had some events.
    """
    kind_ids = [state.model.kind(kind).type_id for kind in kinds]
    printer = state.printer
    stream = state.client.events(kinds=kind_ids, locations=locations, operations=operations, types=types,
                                 last_event_id=last_event_id, reconnect=0.0 if no_reconnect else 60.0)
    seen = 0
    try:
        for event in stream:
            printer.event(event)
            seen += 1
            if count is not None and seen >= count:
                break
    except KeyboardInterrupt:
        pass  # Ctrl-C is how one stops following
    finally:
        closer = getattr(stream, "close", None)
        if closer is not None:
            closer()


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script: eval "$(occi completion bash)"."""
    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - the three shells are built in
        raise click.UsageError(f"no completion for {shell}")
    click.echo(cls(cli, {}, "occi", "_OCCI_COMPLETE").source())


def main() -> None:
    """Console script entry point (`occi`)."""
    cli(prog_name="occi")
