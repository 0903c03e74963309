"""Per-tenant quotas in the service (issue 8): limits, overrides, concurrency, updates, releases.

The service on MemoryStore and the simulated cloud; principals come from a test header.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from occipy import config
from occipy.backends.simulated import SimulatedDriver
from occipy.identity.base import ADMIN, MEMBER, Credentials, Principal
from occipy.model.standard import standard_registry
from occipy.service import options as service_options
from occipy.service.options import QuotaSettings, ServiceOptions
from occipy.service.pipeline import Service
from occipy.store.base import EntityQuery
from occipy.store.memory import MemoryStore

from .conftest import COMPUTE_KIND, INFRA, NETWORK_KIND, STORAGE_KIND, Answer, Harness

COMPUTE = INFRA + "compute"


class HeaderAuth:
    """Test authenticator: `X-Test-User: user@tenant[:role]`."""

    name = "test"

    def challenges(self) -> Sequence[str]:
        return ('Test realm="occipy"',)

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        value = credentials.header("x-test-user")
        if value is None:
            return None
        who, _, role = value.partition(":")
        user, _, tenant = who.partition("@")
        return Principal(user=user, tenant=tenant, roles=frozenset({role or MEMBER}), method="test")

    async def close(self) -> None:
        return None


class TenantHarness(Harness):
    async def as_(self, who: str, method: str, path: str, *lines: str, ctype: str = "text/plain",
                  accept: str = "text/plain", body: str | None = None) -> Answer:
        return await self.call(method, path, body if body is not None else "\n".join(lines), ctype=ctype,
                               accept=accept, headers=[("X-Test-User", who)])

    async def computes(self, tenant: str) -> int:
        return await self.service.store.count(EntityQuery(kinds=(COMPUTE,), tenant=tenant))


async def make(tmp_path: Path, quotas: QuotaSettings, delay: str = "0") -> tuple[TenantHarness, MemoryStore,
                                                                                SimulatedDriver]:
    driver = SimulatedDriver.from_options({"delay": delay, "seed": "1"}, tmp_path)
    store = MemoryStore()
    service = Service(standard_registry(), store, driver,
                      ServiceOptions(sync_wait=2.0, reconcile_interval=0, quotas=quotas), authenticator=HeaderAuth())
    await store.open()
    await driver.open()
    await service.start()
    return TenantHarness(service, driver), store, driver


Factory = Callable[..., Awaitable[TenantHarness]]


@pytest.fixture
async def harness_with(tmp_path: Path) -> AsyncIterator[Factory]:
    """`await harness_with(QuotaSettings(...), delay="0")`: a service with these quotas."""
    made: list[tuple[TenantHarness, MemoryStore, SimulatedDriver]] = []

    async def factory(quotas: QuotaSettings, delay: str = "0") -> TenantHarness:
        made.append(await make(tmp_path, quotas, delay))
        return made[-1][0]

    yield factory
    for harness, store, driver in made:
        await harness.service.stop()
        await driver.close()
        await store.close()


def compute(cores: int | None = None, memory: float | None = None) -> list[str]:
    lines = [COMPUTE_KIND]
    if cores is not None:
        lines.append(f"X-OCCI-Attribute: occi.compute.cores={cores}")
    if memory is not None:
        lines.append(f"X-OCCI-Attribute: occi.compute.memory={memory}")
    return lines


async def test_a_create_over_the_computes_quota_is_403_naming_quota_limit_and_usage(harness_with: Factory) -> None:
    h = await harness_with(QuotaSettings({"computes": 2}))
    for _ in range(2):
        assert (await h.as_("alice@t1", "POST", "/compute/", *compute())).status == 201
    refused = await h.as_("alice@t1", "POST", "/compute/", *compute())
    assert refused.status == 403, refused.text
    assert refused.text.strip() == ("Quota exceeded for computes: requested 1, but already used 2 of 2 computes "
                                    "(tenant t1)")
    assert await h.computes("t1") == 2
    # another tenant has its own usage
    assert (await h.as_("bob@t2", "POST", "/compute/", *compute())).status == 201


async def test_cores_and_memory_are_summed(harness_with: Factory) -> None:
    h = await harness_with(QuotaSettings({"cores": 4, "memory": 8}))
    assert (await h.as_("alice@t1", "POST", "/compute/", *compute(cores=2, memory=4))).status == 201
    cores = await h.as_("alice@t1", "POST", "/compute/", *compute(cores=3, memory=1))
    assert cores.status == 403
    assert "Quota exceeded for cores: requested 3, but already used 2 of 4 cores" in cores.text
    memory = await h.as_("alice@t1", "POST", "/compute/", *compute(cores=1, memory=4.5))
    assert memory.status == 403
    assert "Quota exceeded for memory: requested 4.5 GiB, but already used 4 GiB of 8 GiB memory" in memory.text
    assert (await h.as_("alice@t1", "POST", "/compute/", *compute(cores=2, memory=4))).status == 201
    assert await h.computes("t1") == 2


async def test_storage_size_and_networks(harness_with: Factory) -> None:
    h = await harness_with(QuotaSettings({"storage": 10, "networks": 1}))
    ok = await h.as_("alice@t1", "POST", "/storage/", STORAGE_KIND, "X-OCCI-Attribute: occi.storage.size=6")
    assert ok.status == 201, ok.text
    over = await h.as_("alice@t1", "POST", "/storage/", STORAGE_KIND, "X-OCCI-Attribute: occi.storage.size=5")
    assert over.status == 403
    assert "Quota exceeded for storage: requested 5 GiB, but already used 6 GiB of 10 GiB storage" in over.text
    assert (await h.as_("alice@t1", "POST", "/network/", NETWORK_KIND)).status == 201
    second = await h.as_("alice@t1", "POST", "/network/", NETWORK_KIND)
    assert second.status == 403
    assert "Quota exceeded for networks: requested 1, but already used 1 of 1 networks" in second.text


async def test_per_tenant_overrides_and_unlimited(harness_with: Factory) -> None:
    h = await harness_with(QuotaSettings({"computes": 1}, {"big": {"computes": 3}, "free": {"computes": -1}}))
    results = {}
    for tenant in ("small", "big", "free"):
        statuses = [(await h.as_(f"u@{tenant}", "POST", "/compute/", *compute())).status for _ in range(4)]
        results[tenant] = statuses
    assert results == {"small": [201, 403, 403, 403], "big": [201, 201, 201, 403], "free": [201, 201, 201, 201]}


async def test_twenty_concurrent_creates_against_a_quota_of_five_leave_exactly_five(harness_with: Factory) -> None:
    h = await harness_with(QuotaSettings({"computes": 5}), delay="0.05")
    answers = await asyncio.gather(*(h.as_("alice@t1", "POST", "/compute/", *compute(cores=1))
                                     for _ in range(20)))
    statuses = sorted(a.status for a in answers)
    assert statuses == [201] * 5 + [403] * 15
    assert await h.computes("t1") == 5
    assert h.service.env.quotas.held("t1") == 0  # every reservation was let go


async def test_a_collection_create_over_the_quota_creates_nothing(harness_with: Factory) -> None:
    h = await harness_with(QuotaSettings({"computes": 3}))
    document = {"resources": [{"kind": COMPUTE, "attributes": {"occi.compute.cores": 1}}
                              for _ in range(4)]}
    refused = await h.as_("alice@t1", "POST", "/compute/", ctype="application/occi+json",
                          accept="application/occi+json", body=json.dumps(document))
    assert refused.status == 403
    assert refused.json()["message"].startswith("Quota exceeded for computes: requested 4, but already used 0 of 3")
    assert await h.computes("t1") == 0
    document["resources"] = document["resources"][:3]
    ok = await h.as_("alice@t1", "POST", "/compute/", ctype="application/occi+json",
                     accept="application/occi+json", body=json.dumps(document))
    assert ok.status == 201, ok.text
    assert await h.computes("t1") == 3


async def test_updates_that_grow_cores_count(harness_with: Factory) -> None:
    h = await harness_with(QuotaSettings({"cores": 4}))
    location = (await h.as_("alice@t1", "POST", "/compute/", *compute(cores=2))).location
    grown = await h.as_("alice@t1", "POST", location, "X-OCCI-Attribute: occi.compute.cores=5")
    assert grown.status == 403
    assert "Quota exceeded for cores: requested 3, but already used 2 of 4 cores" in grown.text
    stored = await h.service.store.get(location)
    assert stored is not None and stored.attributes["occi.compute.cores"] == 2
    replaced = await h.as_("alice@t1", "PUT", location, *compute(cores=6))
    assert replaced.status == 403
    assert (await h.as_("alice@t1", "POST", location, "X-OCCI-Attribute: occi.compute.cores=4")).status == 200
    assert (await h.as_("alice@t1", "POST", "/compute/", *compute(cores=1))).status == 403
    # shrinking is always allowed, and frees the cores
    assert (await h.as_("alice@t1", "POST", location, "X-OCCI-Attribute: occi.compute.cores=1")).status == 200
    assert (await h.as_("alice@t1", "POST", "/compute/", *compute(cores=3))).status == 201


async def test_concurrent_updates_cannot_together_exceed_cores(harness_with: Factory) -> None:
    h = await harness_with(QuotaSettings({"cores": 4}), delay='0.05')
    first = (await h.as_("alice@t1", "POST", "/compute/", *compute(cores=1))).location
    second = (await h.as_("alice@t1", "POST", "/compute/", *compute(cores=1))).location
    answers = await asyncio.gather(h.as_("alice@t1", "POST", first, "X-OCCI-Attribute: occi.compute.cores=3"),
                                   h.as_("alice@t1", "POST", second, "X-OCCI-Attribute: occi.compute.cores=3"))
    assert sorted(a.status for a in answers) == [200, 403]
    entities = await h.service.store.query(EntityQuery(kinds=(COMPUTE,), tenant="t1"))
    assert sum(int(e.attributes["occi.compute.cores"]) for e in entities) == 4  # type: ignore[call-overload]


async def test_a_delete_frees_the_quota_and_an_admin_counts_in_its_own_tenant(harness_with: Factory) -> None:
    h = await harness_with(QuotaSettings({"computes": 1}))
    location = (await h.as_("alice@t1", "POST", "/compute/", *compute())).location
    assert (await h.as_("alice@t1", "POST", "/compute/", *compute())).status == 403
    assert (await h.as_("alice@t1", "DELETE", location)).status == 200
    assert (await h.as_("alice@t1", "POST", "/compute/", *compute())).status == 201
    assert (await h.as_(f"root@ops:{ADMIN}", "POST", "/compute/", *compute())).status == 201
    assert (await h.as_(f"root@ops:{ADMIN}", "POST", "/compute/", *compute())).status == 403


@pytest.mark.parametrize("accept", ["text/plain", "text/occi", "application/occi+json"])
async def test_the_refusal_in_every_rendering(harness_with: Factory, accept: str) -> None:
    h = await harness_with(QuotaSettings({"computes": 0}))
    answer = await h.as_("alice@t1", "POST", "/compute/", *compute(), accept=accept)
    assert answer.status == 403
    expected = "Quota exceeded for computes: requested 1, but already used 0 of 0 computes (tenant t1)"
    if accept == "application/occi+json":
        assert answer.json()["message"] == expected
    elif accept == "text/occi":
        assert answer.header("X-OCCI-Error") == expected
    else:
        assert answer.text.strip() == expected


def test_quota_names_agree_between_config_and_service() -> None:
    assert config.QUOTAS == service_options.QUOTA_NAMES


def test_quota_tables_in_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "occipy.toml"
    path.write_text('[quotas]\ncomputes = 10\ncores = 40\nmemory = 81.5\n\n'
                    '[quotas.tenants."project-a"]\ncores = 128\n[quotas.tenants.lab]\ncomputes = -1\n')
    settings = config.load(config_file=str(path), environ={})
    assert settings.quotas == {"computes": 10.0, "cores": 40.0, "memory": 81.5}
    assert settings.tenant_quotas == {"project-a": {"cores": 128.0}, "lab": {"computes": -1.0}}
    quotas = QuotaSettings(settings.quotas, settings.tenant_quotas)
    assert quotas.limits_for("project-a") == {"computes": 10.0, "cores": 128.0, "memory": 81.5}
    assert quotas.limits_for("lab") == {"cores": 40.0, "memory": 81.5}


@pytest.mark.parametrize(("text", "message"), [
    ("[quotas]\nvms = 3\n", "[quotas]: unknown quota 'vms'; the quotas are computes, cores, memory, storage, networks"),
    ('[quotas]\ncores = "many"\n', "[quotas].cores: 'many' is not a number (-1: unlimited)"),
    ("[quotas.tenants.a]\nram = 1\n", "[quotas.tenants.a]: unknown quota 'ram'"),
])
def test_bad_quota_tables_are_refused_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "occipy.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as caught:
        config.load(config_file=str(path), environ={})
    assert str(caught.value).startswith(message)


async def test_a_resource_template_that_grows_cores_counts(harness_with: Factory) -> None:
    h = await harness_with(QuotaSettings({"cores": 4}))
    xlarge = h.service.registry.by_location("/mixin/resource_tpl/xlarge/")
    tiny = h.service.registry.by_location("/mixin/resource_tpl/tiny/")
    assert xlarge is not None and tiny is not None
    location = (await h.as_("alice@t1", "POST", "/compute/", *compute(cores=1))).location

    def category(mixin: object) -> str:
        scheme, term = mixin.scheme, mixin.term
        return f'Category: {term}; scheme="{scheme}"; class="mixin"'

    by_update = await h.as_("alice@t1", "POST", location, category(xlarge))
    assert by_update.status == 403, by_update.text
    assert "Quota exceeded for cores: requested 7, but already used 1 of 4 cores" in by_update.text
    by_collection = await h.as_("alice@t1", "POST", "/mixin/resource_tpl/xlarge/", f"X-OCCI-Location: {location}")
    assert by_collection.status == 403, by_collection.text
    stored = await h.service.store.get(location)
    assert stored is not None and xlarge.type_id not in stored.mixins
    # a template within the quota is accepted, and its reservation is let go when it has run
    assert (await h.as_("alice@t1", "POST", "/mixin/resource_tpl/tiny/", f"X-OCCI-Location: {location}")).status == 200
    assert h.service.env.quotas.held("t1") == 0
