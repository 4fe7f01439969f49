"""Batch mode: the providers' Batch APIs (about half the price), for workflows with ``mode: batch``."""
