#!/usr/bin/env bash
# Runs the shellcheck linter over every shell script of the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.sh' .ci/run)
shellcheck -x -S warning "${files[@]}"
echo "shellcheck: ${#files[@]} scripts clean"
