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
