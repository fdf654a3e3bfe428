#!/usr/bin/env bash
# System packages that the end-to-end tests need (real S3 clients). Installed only when
# missing and only when we can (root with apt-get); otherwise the e2e tests that need
# them skip with a reason.
set -u
pkgs=()
for p in $(cat "$(dirname "$0")/test-debian-packages.txt" 2>/dev/null | grep -v '^#'); do
  dpkg -s "$p" >/dev/null 2>&1 || pkgs+=("$p")
done
[ ${#pkgs[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing test packages: ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1 \
    || echo "warning: could not install some of: ${pkgs[*]} (their tests will be skipped)"
else
  echo "note: not root or no apt-get; tests needing ${pkgs[*]} will be skipped"
fi
exit 0
