#!/bin/sh
# Installs the official OpenAI Node SDK (npm `openai`, major version 4, and `ws` 8 for its
# Realtime client) into build/sdk-node for tests/sdk/run.py (make sdk-check). Nothing is
# committed: build/ is
# ignored by git.
#
# Without Node, npm or a reachable npm registry it prints `SKIP sdk: <reason>` and exits
# 0 (CI machines may have only the Debian mirror); run.py then finds no SDK and skips too.
# Already installed: nothing is fetched. Variables: OP_SDK_NODE_DIR (default
# build/sdk-node), NPM (default npm), NODE (default node).
set -u
cd "$(dirname "$0")/../.."
dir=${OP_SDK_NODE_DIR:-build/sdk-node}
node=${NODE:-node}
npm=${NPM:-npm}

skip() {
    echo "SKIP sdk: $*"
    exit 0
}

command -v "$node" >/dev/null 2>&1 || skip "node is not installed (Debian: apt-get install nodejs npm)"
major=$("$node" -e 'process.stdout.write(process.versions.node.split(".")[0])' 2>/dev/null)
[ "${major:-0}" -ge 18 ] 2>/dev/null || skip "node $("$node" --version 2>/dev/null) is older than 18, the SDK's minimum"

version_of() {
    "$node" -e 'try { const p = require(process.argv[1]); process.stdout.write(p.version) } catch (e) {}' \
        "$PWD/$dir/node_modules/$1/package.json" 2>/dev/null
}
installed=$(version_of openai)
ws=$(version_of ws)
case "$installed/$ws" in
4.*/8.*) echo "sdk setup: openai $installed and ws $ws already in $dir"; exit 0 ;;
esac

command -v "$npm" >/dev/null 2>&1 || skip "npm is not installed (Debian: apt-get install npm)"
out=$(timeout 60 "$npm" ping --fetch-retries=0 --fetch-timeout=30000 2>&1)
rc=$?
case $rc in
0) ;;
124) skip "the npm registry did not answer within 60 s (npm ping)" ;;
*) why=$(echo "$out" | grep -m 1 -E 'FetchError|npm (error|ERR!) code' | sed 's/^npm [a-zA-Z!]* //')
   skip "the npm registry is not reachable (npm ping: ${why:-exit status $rc})" ;;
esac
mkdir -p "$dir"
# ws: the WebSocket package the SDK's Realtime client (openai/beta/realtime/ws) runs on.
if ! out=$(timeout 600 "$npm" install --prefix "$dir" --no-audit --no-fund openai@4 ws@8 2>&1); then
    echo "$out" | tail -n 20
    skip "npm install openai@4 ws@8 failed ($(echo "$out" | grep -m 1 -E 'npm (error|ERR!)' | sed 's/^npm [a-zA-Z!]* //'))"
fi
echo "sdk setup: installed openai $(version_of openai) and ws $(version_of ws) in $dir"
