"""sheetbot: a spreadsheet as the queue and the review board for overnight LLM work."""

__version__ = "0.1.0"
