"""Top-level test configuration: registers the real-service fixtures for every test directory.

Each plugin module in tests/services/ starts one real service (PostgreSQL, dockerd, moto, OpenStack)
only when a test asks for its fixtures; docs/testing.md lists them.
"""

pytest_plugins = [
    "tests.services.postgres",
    "tests.services.dockerd",
    "tests.services.moto_ec2",
    "tests.services.openstack_cloud",
]

# Hypothesis on a shared 2-core machine: generation speed and example run times depend on what else
# runs (other suites, services the suite started), not on our code. The properties themselves stay
# strict; only the timing health checks and per-example deadlines are relaxed.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "occipy", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("occipy")
