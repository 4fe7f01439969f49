"""The night: id assignment, lock, run, write-back and harvest, vendor-free."""
