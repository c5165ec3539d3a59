"""`python -m bench`: run every benchmark and print its figures."""

from . import learner_throughput, rollout_throughput, sandbox_throughput

sandbox_throughput.main([])
rollout_throughput.main([])
learner_throughput.main([])
