"""Real services for the test suite, one pytest plugin module each (registered in tests/conftest.py).

postgres.py, dockerd.py, moto_ec2.py and openstack_cloud.py start PostgreSQL, a private dockerd, moto_server and
a small OpenStack on 127.0.0.1; _process.py holds their shared process plumbing. docs/testing.md says
what each fixture yields, how it cleans up and how long it takes to start.
"""
