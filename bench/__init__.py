"""`make bench`: the system under load beside raw baselines measured in the same run."""
