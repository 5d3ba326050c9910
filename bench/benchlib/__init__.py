"""Helpers shared by the scripts in bench/: devices and timing, data folders, jobs, model artifacts, HTTP load."""
