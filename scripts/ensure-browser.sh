#!/usr/bin/env bash
# The dashboard's browser tests use Debian's chromium (never `playwright install`).
# Install it with apt when it is missing and we are root; otherwise those tests skip.
set -u
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium for the browser tests"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "could not install chromium: the browser tests will be skipped" >&2
else
  echo "chromium is missing and cannot be installed here: the browser tests will be skipped" >&2
fi
exit 0
