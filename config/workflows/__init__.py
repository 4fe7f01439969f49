"""Ready workflows for the overnight jobs online shops run; shipped as the package `sheetbot.recipes`."""
