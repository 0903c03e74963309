"""Tests of the durable store and its memory twin."""
