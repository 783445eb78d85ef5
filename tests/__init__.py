"""The test suite, one package per layer (lang, eval, store, notify, service, api, ui,
e2e); what the layers share is in tests/support and the conftest.py files."""
