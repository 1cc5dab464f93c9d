"""Load tests of a running phasewatch (``phasewatch loadtest``).

``config`` (the config phasewatch runs with), ``plan`` (what is sent when), ``peer`` (the
trigger target), ``worker`` (locust's users, run as a child process), ``runner`` (one load
test and its checks), ``thresholds`` (pass or fail).

``worker`` imports nothing of phasewatch and runs by its path in a child process: locust
patches the standard library with gevent on import, and nothing else may see that.
"""
