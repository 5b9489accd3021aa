#!/usr/bin/env bash
# The quick start (`make demo`): starts thatchd with the built-in defaults,
# a state directory and socket of its own, and its Lambda HTTP API on a free
# loopback port; deploys examples/hello with the thatch CLI, invokes it cold
# and then warm, shows the timings and the daemon's statistics; then deploys
# and invokes it again with the AWS CLI, as on Lambda; and stops the daemon.
set -euo pipefail
build=${1:-build}
bin="$PWD/$build/bin"

# thatchd removes whatever it finds in its cgroup subtree when it starts:
# never next to a running one.
if pgrep -x thatchd >/dev/null; then
  echo "demo: a thatchd is already running on this host; stop it first" >&2
  exit 1
fi

# Sandboxes open their code with their own uid: the state directory must be
# searchable by everyone (it is 0711), and so must its parents.
demo=$(mktemp -d /tmp/thatch-demo.XXXXXX)
chmod 0711 "$demo"
export THATCH_SOCKET="$demo/thatchd.sock"
pid=
stop() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid" || true
  fi
  rm -rf "$demo"
}
trap stop EXIT

# The built-in defaults, and the Lambda HTTP API with one access key.
cat >"$demo/thatchd.toml" <<'TOML'
http_listen = "127.0.0.1:0"
[[access_key]]
id = "AKIDTHATCHDEMO"
secret = "demo-secret-not-for-real-use"
allow = ["invoke", "read", "write"]
TOML
# A client whose token may read /metrics (thatchd keeps only its SHA-256).
scrape_token=demo-scrape-token-not-for-real-use
printf '[[client]]\nname = "prometheus"\ntoken_sha256 = "%s"\nallow = ["metrics"]\n' \
  "$(printf %s "$scrape_token" | sha256sum | cut -d' ' -f1)" >>"$demo/thatchd.toml"
echo "# thatchd --config $demo/thatchd.toml --state-dir $demo/state --socket $THATCH_SOCKET"
"$bin/thatchd" --config "$demo/thatchd.toml" --state-dir "$demo/state" --socket "$THATCH_SOCKET" \
  2>"$demo/thatchd.log" &
pid=$!
for _ in $(seq 100); do
  grep -q "thatchd: ready" "$demo/thatchd.log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$demo/thatchd.log"; exit 1; }
  sleep 0.1
done
"$bin/thatch" ping >/dev/null

echo
echo "\$ thatch deploy hello examples/hello"
"$bin/thatch" deploy hello examples/hello

echo
echo "\$ thatch invoke hello --data '{\"name\": \"thatch\"}' --verbose     # cold: a new sandbox"
"$bin/thatch" invoke hello --data '{"name": "thatch"}' --verbose

echo
echo "\$ thatch invoke hello --verbose                                  # warm: the same sandbox"
"$bin/thatch" invoke hello --verbose

echo
echo "\$ thatch stats"
"$bin/thatch" stats

# The same function through the Lambda API, with Debian's AWS CLI.
endpoint="http://$(sed -n 's/.*listening address=http:\([^ ]*\).*/\1/p' "$demo/thatchd.log" | head -1)"
export AWS_ACCESS_KEY_ID=AKIDTHATCHDEMO AWS_SECRET_ACCESS_KEY=demo-secret-not-for-real-use
export AWS_DEFAULT_REGION=us-east-1 AWS_PAGER=""
aws=/usr/bin/aws
(cd examples/hello && python3 -m zipfile -c "$demo/hello.zip" handler.py)
echo
echo "\$ aws lambda create-function --endpoint-url $endpoint --function-name hello-aws \\"
echo "      --runtime python3.11 --handler handler.handler --role any --zip-file fileb://hello.zip"
"$aws" lambda create-function --endpoint-url "$endpoint" --function-name hello-aws \
  --runtime python3.11 --handler handler.handler --role arn:aws:iam::000000000000:role/any \
  --zip-file "fileb://$demo/hello.zip" --query '{FunctionArn: FunctionArn, Version: Version}'
echo
echo "\$ aws lambda invoke --endpoint-url $endpoint --function-name hello-aws \\"
echo "      --cli-binary-format raw-in-base64-out --payload '{\"name\": \"Lambda client\"}' out.json"
"$aws" lambda invoke --endpoint-url "$endpoint" --function-name hello-aws \
  --cli-binary-format raw-in-base64-out --payload '{"name": "Lambda client"}' "$demo/out.json"
echo "\$ cat out.json"
cat "$demo/out.json"
echo

# Triggers (docs/triggers.md): a URL for hello, and a schedule.
echo
echo "\$ thatch url create hello"
url=$("$bin/thatch" url create hello)
echo "$url"
echo "\$ curl -s $url"
curl -s --max-time 30 "$url"
echo
echo "\$ thatch schedule add hello 'cron(0/5 * * * ? *)' --data '{\"name\": \"schedule\"}'"
"$bin/thatch" schedule add hello 'cron(0/5 * * * ? *)' --data '{"name": "schedule"}'
echo "\$ thatch ls --triggers"
"$bin/thatch" ls --triggers

echo
echo "# GET $endpoint/metrics with Authorization: Bearer (the client allowed \"metrics\"),"
echo "# as Prometheus scrapes it; some of its lines:"
/usr/bin/python3 - "$endpoint/metrics" "$scrape_token" <<'PY' | grep -E '^thatch_(invocations_total|cold_starts_total|warm_starts_total|sandboxes|trigger_deliveries_total)'
import sys, urllib.request
request = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
print(urllib.request.urlopen(request, timeout=30).read().decode(), end="")
PY

echo
echo "# stopping thatchd (SIGTERM: it drains, then stops every sandbox)"
kill -TERM "$pid"
wait "$pid"
pid=
grep -E "thatchd: (ready|Terminated|stopped)" "$demo/thatchd.log"
