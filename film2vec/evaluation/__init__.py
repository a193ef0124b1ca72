"""The evaluation protocol (pure) and the stage that runs it, with the ALS baseline."""
