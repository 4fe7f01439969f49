"""Providers: the model vendors behind one interface."""
