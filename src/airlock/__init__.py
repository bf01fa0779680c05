"""Airlock: let AI agents change real files safely."""
