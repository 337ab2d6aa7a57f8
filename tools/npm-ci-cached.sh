#!/bin/sh
# Installs the npm packages pinned by SRC/package-lock.json into DEST/node_modules with `npm ci`,
# unless DEST already holds an install of that same lock file. For the Node tools the build
# uses (tools/openapi-lint, tools/openapi-client-check): node_modules stays in the build
# directory, and a second run costs nothing.
#   tools/npm-ci-cached.sh SRC DEST
set -eu
src=$1
dest=$2
if cmp -s "$src/package-lock.json" "$dest/package-lock.json" && [ -d "$dest/node_modules" ]; then
  exit 0
fi
mkdir -p "$dest"
rm -f "$dest/package-lock.json"  # written back only once npm ci has succeeded
cp "$src/package.json" "$dest/package.json"
cp "$src/package-lock.json" "$dest/package-lock.json.new"
mv "$dest/package-lock.json.new" "$dest/package-lock.json"
cd "$dest"
if ! npm ci --prefer-offline --no-audit --no-fund --ignore-scripts; then
  rm -f package-lock.json
  exit 1
fi
