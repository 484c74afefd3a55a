"""Scale-out front end: one upscale job over many GPUs and machines on Ray (driver.py, worker.py)."""
