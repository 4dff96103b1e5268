"""Background loops that run inside each server process."""
