#!/usr/bin/env bash
# The paper's shape on a Ray cluster of several nodes on this machine, with faults:
# starts a head and learner, inference and sandbox nodes (raylets, token auth on),
# submits +experiment=rehearsal with launch/submit.sh, deals the drills, checks that
# nothing was lost, prints where the time went, and stops everything it started.
#
#   launch/rehearse.sh                              # every drill: node, hang, sandbox, learner
#   launch/rehearse.sh --drills none trainer.iterations=3
#   launch/rehearse.sh --drills node,learner learner.lr=1e-4
set -euo pipefail

cd "$(dirname "$0")/.."
exec .venv/bin/python -m launch.rehearse "$@"
