"""Developer tools that (re)generate files under ``hardware_db/data`` from their sources."""
