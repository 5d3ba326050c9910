"""Test data makers and fakes shared by the unit, integration and GPU tests (not tests themselves)."""
