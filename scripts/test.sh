#!/usr/bin/env bash
# Aion's whole test run: sets up everything the tests need on a fresh Debian machine
# (as root), then runs every check. CI runs it through .ci/run.
#
#   scripts/test.sh [--quick] [-- ARGS...]
#
#   --quick        do not apt-get install chromium/chromedriver when they are missing
#                  (browser tests then find no AION_TEST_CHROMIUM/AION_TEST_CHROMEDRIVER).
#   -- ARGS...     passed to the test runner (cargo nextest run / cargo test).
#
# Environment:
#   AION_TEST_FILTER      test name filter handed to the test runner (substring match);
#                         also skips the separate doc-test step.
#   AION_TEST_SKIP_CARGO  =1: set-up and provider self-test only; no fmt/clippy/tests.
#   AION_TEST_DOCTESTS    =0: skip doc tests (nextest does not run them; a separate
#                         `cargo test --doc` step does).
#   AION_TEST_POSTGRES_URL  use this server instead of finding/starting a local one.
#   CI                    =true (set by CI): no incremental builds, no colours,
#                         line-tables-only debug info, target dir kept in
#                         ~/.cache/aion-ci-target between runs on the same machine.
#
# Exported for the Rust tests:
#   AION_TEST_POSTGRES_URL   postgres://postgres@127.0.0.1:5432/postgres (tests create
#                            one fresh database per test from it)
#   AION_TEST_OIDC_PROVIDER  absolute path of testing/oidc-provider/provider.mjs (run
#                            with `node`; see testing/oidc-provider/README.md)
#   AION_TEST_CHROMIUM, AION_TEST_CHROMEDRIVER  /usr/bin/chromium, /usr/bin/chromedriver
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

QUICK=0
RUNNER_ARGS=()
while (($#)); do
  case $1 in
    --quick) QUICK=1 ;;
    --) shift; RUNNER_ARGS=("$@"); break ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

START=$SECONDS
section() { printf '\n===== %s  [%ds]\n' "$*" $((SECONDS - START)); }
die() { printf '\ntest.sh: ERROR: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

APT_UPDATED=0
apt_install() {
  have apt-get || die "apt-get not found; install these by hand: $*"
  export DEBIAN_FRONTEND=noninteractive
  local log
  log=$(mktemp)
  if ((APT_UPDATED == 0)); then
    apt-get update -q >"$log" 2>&1 || {
      tail -n 20 "$log" >&2
      die "apt-get update failed (no network to Debian's mirrors?); cannot install: $*"
    }
    APT_UPDATED=1
  fi
  echo "apt-get install $*"
  apt-get install -y -q --no-install-recommends "$@" >"$log" 2>&1 || {
    tail -n 20 "$log" >&2
    die "apt-get install $* failed (no network to Debian's mirrors?)"
  }
  rm -f "$log"
}

if [[ ${CI:-} == true ]]; then
  export CARGO_INCREMENTAL=0
  export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
  export CARGO_PROFILE_DEV_DEBUG=${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}
  export CARGO_PROFILE_TEST_DEBUG=${CARGO_PROFILE_TEST_DEBUG:-line-tables-only}
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/aion-ci-target}
  export NO_COLOR=1
fi

# ----------------------------------------------------------------- PostgreSQL
section "PostgreSQL"

pg_answers() { psql "$1" -X -Atqc 'select 1' >/dev/null 2>&1; }

if [[ -n ${AION_TEST_POSTGRES_URL:-} ]]; then
  have psql || apt_install postgresql-client
  pg_answers "$AION_TEST_POSTGRES_URL" || die "AION_TEST_POSTGRES_URL=$AION_TEST_POSTGRES_URL does not answer"
else
  PG_URL=postgres://postgres@127.0.0.1:5432/postgres
  if ! { have psql && pg_answers "$PG_URL"; }; then
    if ! have psql || ! have pg_ctlcluster || ! ls /etc/postgresql/*/main/postgresql.conf >/dev/null 2>&1; then
      echo "no local PostgreSQL cluster: installing Debian's postgresql"
      apt_install postgresql
    fi
    PG_VERSION=$(ls /etc/postgresql | sort -V | tail -n 1)
    PG_HBA=/etc/postgresql/$PG_VERSION/main/pg_hba.conf
    # Trust the loopback interface (tests connect as postgres without a password).
    if ! grep -Eq '^host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$PG_HBA"; then
      echo "pg_hba.conf: trusting 127.0.0.1 and ::1"
      # Rewrite in place (same inode, owner and mode); first matching line wins.
      HBA_OLD=$(cat "$PG_HBA")
      printf 'host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n%s\n' "$HBA_OLD" >"$PG_HBA"
    fi
    if pg_isready -q -h 127.0.0.1 -p 5432; then
      pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main reload
    else
      echo "starting PostgreSQL $PG_VERSION"
      pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main start ||
        die "could not start PostgreSQL $PG_VERSION (see /var/log/postgresql/)"
    fi
    for _ in $(seq 60); do
      pg_answers "$PG_URL" && break
      sleep 0.5
    done
    pg_answers "$PG_URL" || die "PostgreSQL at $PG_URL does not answer (see /var/log/postgresql/)"
  fi
  export AION_TEST_POSTGRES_URL=$PG_URL
fi
echo "AION_TEST_POSTGRES_URL=$AION_TEST_POSTGRES_URL ($(psql "$AION_TEST_POSTGRES_URL" -X -Atqc 'show server_version'))"

# ----------------------------------------------------------------- OpenID provider
section "OpenID provider (testing/oidc-provider)"

OIDC_DIR=$ROOT/testing/oidc-provider
have node || die "Node.js (>= 20.19) is needed for the test OpenID provider and is not installed"
have npm || die "npm is needed for the test OpenID provider and is not installed"
echo "node $(node --version), npm $(npm --version)"

# npm ci only when node_modules does not match the lock file.
LOCK_SUM=$(sha256sum "$OIDC_DIR/package-lock.json" | cut -d' ' -f1)-$(node --version)
STAMP=$OIDC_DIR/node_modules/.aion-lock-stamp
if [[ -f $STAMP && $(cat "$STAMP") == "$LOCK_SUM" && -d $OIDC_DIR/node_modules/oidc-provider ]]; then
  echo "node_modules up to date with package-lock.json"
else
  npm ci --prefix "$OIDC_DIR" --no-audit --no-fund --loglevel=error ||
    die "npm ci in testing/oidc-provider failed (no access to the npm registry?)"
  echo "$LOCK_SUM" >"$STAMP"
fi

node --test --test-reporter=spec "$OIDC_DIR/selftest.mjs" </dev/null ||
  die "the OpenID provider self-test failed"
export AION_TEST_OIDC_PROVIDER=$OIDC_DIR/provider.mjs
echo "AION_TEST_OIDC_PROVIDER=$AION_TEST_OIDC_PROVIDER"

# ----------------------------------------------------------------- browser
section "Chromium and ChromeDriver"

if ! { have chromium && have chromedriver; }; then
  if ((QUICK)); then
    echo "WARNING: chromium/chromedriver missing and --quick given: not installing them;"
    echo "         browser tests will find no AION_TEST_CHROMIUM/AION_TEST_CHROMEDRIVER."
  else
    echo "installing Debian's chromium and chromium-driver"
    apt_install chromium chromium-driver
  fi
fi
if have chromium && have chromedriver; then
  export AION_TEST_CHROMIUM=${AION_TEST_CHROMIUM:-$(command -v chromium)}
  export AION_TEST_CHROMEDRIVER=${AION_TEST_CHROMEDRIVER:-$(command -v chromedriver)}
  echo "AION_TEST_CHROMIUM=$AION_TEST_CHROMIUM ($(chromium --version 2>/dev/null || true))"
  echo "AION_TEST_CHROMEDRIVER=$AION_TEST_CHROMEDRIVER ($(chromedriver --version 2>/dev/null || true))"
fi

# ----------------------------------------------------------------- Rust
if [[ ${AION_TEST_SKIP_CARGO:-0} == 1 ]]; then
  section "AION_TEST_SKIP_CARGO=1: skipping cargo fmt, clippy and tests"
  exit 0
fi

have cargo || die "cargo is not installed"

section "cargo fmt --check"
cargo fmt --all --check || die "code is not formatted: run cargo fmt --all"

section "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings || die "clippy found problems"

FILTER_ARGS=()
[[ -n ${AION_TEST_FILTER:-} ]] && FILTER_ARGS=("$AION_TEST_FILTER")

if cargo nextest --version >/dev/null 2>&1; then
  # nextest does not run doc tests; run them first so that nextest's summary is
  # the last thing printed.
  if [[ ${AION_TEST_DOCTESTS:-1} != 0 && -z ${AION_TEST_FILTER:-} && ${#RUNNER_ARGS[@]} -eq 0 ]]; then
    section "cargo test --doc"
    cargo test --workspace --doc --locked || die "doc tests failed"
  fi
  section "cargo nextest run"
  cargo nextest run --workspace --locked --no-fail-fast "${FILTER_ARGS[@]}" "${RUNNER_ARGS[@]}" ||
    die "tests failed"
else
  section "cargo test (cargo-nextest not installed)"
  if ((${#RUNNER_ARGS[@]})); then
    cargo test --workspace --locked --no-fail-fast "${FILTER_ARGS[@]}" -- "${RUNNER_ARGS[@]}" || die "tests failed"
  else
    cargo test --workspace --locked --no-fail-fast "${FILTER_ARGS[@]}" || die "tests failed"
  fi
fi

section "all checks passed"
