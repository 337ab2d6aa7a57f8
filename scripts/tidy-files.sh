#!/usr/bin/env bash
# The .cpp files `make tidy` checks, of those compiled in BUILD_DIR (its compile_commands.json):
#   scripts/tidy-files.sh BUILD_DIR         every one
#   scripts/tidy-files.sh BUILD_DIR REF     those changed since the git ref REF, and the .cpp
#                                           beside each changed header (a header is checked
#                                           through the files that include it)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=$1
ref=${2:-}
if [[ -z "$ref" ]]; then
  git ls-files '*.cpp'
else
  {
    git diff --name-only --diff-filter=d "$ref" -- '*.cpp'
    git diff --name-only --diff-filter=d "$ref" -- '*.h' | sed 's/\.h$/.cpp/'
  } | sort -u
fi | while read -r file; do
  grep -q "\"file\": \"$PWD/$file\"" "$build_dir/compile_commands.json" && echo "$file"
done
