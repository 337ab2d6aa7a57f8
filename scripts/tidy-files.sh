#!/usr/bin/env bash
# The .cpp files `make tidy` checks, of those compiled in BUILD_DIR (its compile_commands.json):
#   scripts/tidy-files.sh BUILD_DIR         every one
#   scripts/tidy-files.sh BUILD_DIR REF     those changed since the git ref REF (committed or
#                                           not), and one for each changed header: the .cpp
#                                           beside it, or else a .cpp that includes it (a header
#                                           is checked through a file that includes it). Every
#                                           one when .clang-tidy changed since REF.
# Exits non-zero when REF is not a commit of this clone: a check that cannot say what changed
# must not pass.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=$1
ref=${2:-}
compiled() {
  while read -r file; do
    if grep -q "\"file\": \"$PWD/$file\"" "$build_dir/compile_commands.json"; then
      echo "$file"
    fi
  done
}
# One compiled .cpp that includes HEADER: includes name it by a path relative to the root, to
# its own folder or to tests/, so the longest suffix of its path that some file includes wins.
includer_of() {
  local suffix=$1
  while :; do
    local found
    # The whole list, then its first line: `| head -n 1` would end the pipeline early, and
    # under pipefail its SIGPIPE would fail the script.
    found=$(git grep -l -F "#include \"$suffix\"" -- '*.cpp' | compiled)
    found=${found%%$'\n'*}
    if [[ -n "$found" ]]; then
      echo "$found"
      return
    fi
    [[ "$suffix" == */* ]] || return 0
    suffix=${suffix#*/}
  done
}
if [[ -n "$ref" ]] && ! git rev-parse --verify --quiet "$ref^{commit}" >/dev/null; then
  echo "tidy-files.sh: $ref is not a commit of this clone" >&2
  exit 1
fi
if [[ -z "$ref" ]] || ! git diff --quiet "$ref" -- .clang-tidy; then
  git ls-files '*.cpp' | compiled
  exit 0
fi
{
  git diff --name-only --diff-filter=d "$ref" -- '*.cpp' | compiled
  git diff --name-only --diff-filter=d "$ref" -- '*.h' | while read -r header; do
    beside=$(echo "${header%.h}.cpp" | compiled)
    if [[ -n "$beside" ]]; then echo "$beside"; else includer_of "$header"; fi
  done
} | sort -u
