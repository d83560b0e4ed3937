"""Tests of the inference backends."""
