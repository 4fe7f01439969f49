"""Boards: the spreadsheet backends. ``open_board`` picks one from the configuration."""
