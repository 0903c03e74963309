"""Fakes that let a real OpenStack (Zed) run with no hypervisor, switch or disk: for tests only.

Loaded by Debian's /usr/bin/python3 inside neutron-server and cinder-volume (scripts/openstack/cloud.py
puts this directory's parent on their PYTHONPATH and registers the ML2 entry point); never imported
by occipy or its tests.
"""
