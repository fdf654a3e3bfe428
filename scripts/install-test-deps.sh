#!/usr/bin/env bash
# What the real-client end-to-end tests need beyond the project's own .venv:
#  1. the Debian packages in scripts/test-debian-packages.txt (aws CLI v2, s3cmd, rclone,
#     restic, duplicity, s3fs, fuse3, nodejs, npm, ...), installed only when missing and
#     only when we can (root with apt-get);
#  2. the aws CLI v1 from PyPI in a venv of its own, .venv/clients/awscli-v1 (awscli v1
#     pins its own botocore, which must not replace the project's);
#  3. the AWS SDK for JavaScript v3 exactly as tests/e2e/js/package-lock.json pins it,
#     `npm ci` into tests/e2e/js/node_modules, redone only when the lock file changed
#     (node_modules/.installed-lock-sha256 records the lock it was installed from).
# Idempotent and quick when everything is there; never fails: when something cannot be
# installed (not root, offline) the tests that need it skip with the reason.
set -u
cd "$(dirname "$0")/.." || exit 0

# a line is "package [command]": present when dpkg knows the package or, if a command is
# named, when that command is on PATH (a Node.js from elsewhere brings node and npm itself,
# and Debian's npm would conflict with it)
pkgs=()
while read -r p cmd _; do
  case "$p" in '' | '#'*) continue ;; esac
  [ -n "${cmd:-}" ] && command -v "$cmd" >/dev/null 2>&1 && continue
  dpkg -s "$p" >/dev/null 2>&1 || pkgs+=("$p")
done < <(cat scripts/test-debian-packages.txt 2>/dev/null)
if [ ${#pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing test packages: ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1 || true
    if ! apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1; then
      # one by one, so one missing package does not cost the others
      for p in "${pkgs[@]}"; do
        apt-get install -y -qq --no-install-recommends "$p" >/dev/null 2>&1 \
          || echo "warning: could not install $p (its tests will be skipped)"
      done
    fi
  else
    echo "note: not root or no apt-get; tests needing ${pkgs[*]} will be skipped"
  fi
fi

v1=.venv/clients/awscli-v1
if [ ! -x "$v1/bin/aws" ]; then
  py=.venv/bin/python
  [ -x "$py" ] || py=python3
  echo "installing the aws CLI v1 (PyPI awscli) into $v1"
  rm -rf "$v1"
  if ! { "$py" -m venv "$v1" >/dev/null 2>&1 \
      && "$v1/bin/python" -m pip install -q --disable-pip-version-check \
           --timeout 20 --retries 1 awscli >/dev/null 2>&1; }; then
    echo "warning: could not install awscli v1 from PyPI (its tests will be skipped)"
    rm -rf "$v1"
  fi
fi

js=tests/e2e/js
if [ -f "$js/package-lock.json" ]; then
  want=$(sha256sum "$js/package-lock.json" | cut -d' ' -f1)
  have=$(cat "$js/node_modules/.installed-lock-sha256" 2>/dev/null)
  if [ "$want" != "$have" ]; then
    if command -v npm >/dev/null 2>&1; then
      echo "installing the AWS SDK for JavaScript v3 (npm ci) into $js/node_modules"
      if (cd "$js" && timeout 600 npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1); then
        echo "$want" >"$js/node_modules/.installed-lock-sha256"
      else
        echo "warning: npm ci in $js failed (tests/e2e/test_clients_js.py will be skipped)"
        rm -rf "$js/node_modules"
      fi
    else
      echo "note: npm is missing; tests/e2e/test_clients_js.py will be skipped"
    fi
  fi
fi
exit 0
