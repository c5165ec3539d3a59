#!/usr/bin/env bash
# Submit the training app to a running Ray cluster as a Ray job, and return at once.
# The project folder is uploaded as the job's working directory (launch/runtime_env.yaml
# lists what stays behind); the arguments are Hydra overrides of `python -m launch.train`.
#
#   launch/submit.sh trainer.iterations=5 run.dir=/shared/runs/first
#   RAY_ADDRESS=http://127.0.0.1:8265 launch/submit.sh +experiment=paper_8b ...
#
# RAY_ADDRESS  the head's dashboard, default http://127.0.0.1:8265 (an SSH tunnel to it)
# Token authentication (README, "Submitting to a cluster"): the token is read from
# RAY_AUTH_TOKEN, else the file named by RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token.
set -euo pipefail

cd "$(dirname "$0")/.."
address="${RAY_ADDRESS:-http://127.0.0.1:8265}"
# Ray's CLI attaches the token only in token mode; the cluster refuses requests without it.
# The commands printed at the end need the mode too, in the caller's shell.
mode_prefix=""
if [ -z "${RAY_AUTH_MODE:-}" ]; then
  mode_prefix="RAY_AUTH_MODE=token "
fi
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
token_file="${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}"
if [ "$RAY_AUTH_MODE" = token ] && [ -z "${RAY_AUTH_TOKEN:-}" ] && [ ! -s "$token_file" ]; then
  echo "submit.sh: no Ray token in RAY_AUTH_TOKEN or $token_file; copy the cluster's token" \
    "(\`ray get-auth-token\` on the head prints it) into a file of mode 600 and set" \
    "RAY_AUTH_TOKEN_PATH to it" >&2
  exit 2
fi
ray_cli=ray
if [ -x .venv/bin/ray ]; then
  ray_cli=.venv/bin/ray
fi
submission_id="rlef-train-$(date -u +%Y%m%d-%H%M%S)-$RANDOM"

"$ray_cli" job submit --address "$address" --submission-id "$submission_id" --no-wait \
  --working-dir . --runtime-env launch/runtime_env.yaml \
  -- python -m launch.train "$@"

ray_job="${mode_prefix}ray job"
echo "job id: $submission_id"
echo "follow its log:  $ray_job logs --follow --address $address $submission_id"
echo "its status:      $ray_job status --address $address $submission_id"
echo "stop it (after the current iteration, with a checkpoint):"
echo "                 $ray_job stop --address $address $submission_id"
