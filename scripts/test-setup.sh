#!/usr/bin/env bash
# Makes the local PostgreSQL server and its pgvector extension ready for the test suite
# (run by `npm test` through `pretest`, and by `npm run setup:postgres`):
#   1. the server answers on $PGHOST:$PGPORT, else the installed cluster on that port is
#      started and waited for (at most $PG_START_TIMEOUT seconds);
#   2. pgvector is installed (scripts/install-pgvector.sh, a no-op once it is);
#   3. `CREATE EXTENSION vector` works, checked in a throwaway database that is then dropped;
#   4. a headless Chromium for the web console's browser tests: Debian's `chromium` package,
#      installed with apt-get when /usr/bin/chromium (or $PEAKDB_CHROMIUM) is missing;
#   5. iproute2, nftables and miniupnpd for the NATs of the network-namespace tests of relays.
# Never skips: anything missing that it cannot fix ends it with a non-zero exit and a reason.
#
# Environment (all optional): PGHOST (default 127.0.0.1), PGPORT (5432), PGUSER (postgres),
# PG_START_TIMEOUT (30), PEAKDB_CHROMIUM (a Chromium binary to use instead of /usr/bin/chromium).
set -euo pipefail

export PGHOST="${PGHOST:-127.0.0.1}"
export PGPORT="${PGPORT:-5432}"
export PGUSER="${PGUSER:-postgres}"
START_TIMEOUT="${PG_START_TIMEOUT:-30}"
SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf 'test-setup: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

for tool in pg_isready psql; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "$tool not found: the PostgreSQL client and server are not installed (apt-get install postgresql)"
done

# --- 1. the server ------------------------------------------------------------------

ready() { pg_isready -q -h "$PGHOST" -p "$PGPORT" -t 1; }

if ! ready; then
  command -v pg_lsclusters >/dev/null 2>&1 ||
    die "nothing answers on $PGHOST:$PGPORT and pg_lsclusters is missing, so no cluster can be started (apt-get install postgresql)"
  # version, cluster name and log file of the installed cluster configured for this port
  read -r version cluster logfile < <(pg_lsclusters --no-header |
    awk -v p="$PGPORT" '$3 == p && !n++ { print $1, $2, $7 }') || true
  [[ -n "${version:-}" ]] ||
    die "nothing answers on $PGHOST:$PGPORT and no installed cluster uses port $PGPORT (pg_lsclusters: $(pg_lsclusters --no-header | tr '\n' ';'))"
  log "PostgreSQL $version/$cluster is not answering on $PGHOST:$PGPORT; starting it"
  # --skip-systemctl-redirect: also works where systemd is not running (containers, CI).
  pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start ||
    log "pg_ctlcluster $version $cluster start failed; waiting in case another start is under way"
  deadline=$((SECONDS + START_TIMEOUT))
  until ready; do
    if ((SECONDS >= deadline)); then
      [[ -n "${logfile:-}" && -r "$logfile" ]] && tail -n 10 "$logfile" >&2
      die "PostgreSQL $version/$cluster did not answer on $PGHOST:$PGPORT within ${START_TIMEOUT}s (its log: ${logfile:-unknown})"
    fi
    sleep 0.2
  done
  log "PostgreSQL $version/$cluster is up"
fi

# --- 2. pgvector --------------------------------------------------------------------

bash "$SCRIPTS/install-pgvector.sh" || die "installing pgvector failed (see above)"

# --- 3. CREATE EXTENSION vector -----------------------------------------------------

PSQL=(psql -X -q -v ON_ERROR_STOP=1 --no-psqlrc -At)
CHECK_DB="peakdb_setup_check_$$"
drop_check_db() {
  "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $CHECK_DB" >/dev/null 2>&1 || true
}
trap drop_check_db EXIT

"${PSQL[@]}" -d postgres -c "CREATE DATABASE $CHECK_DB" ||
  die "cannot create a database as $PGUSER on $PGHOST:$PGPORT"
result="$("${PSQL[@]}" -d "$CHECK_DB" \
  -c "CREATE EXTENSION IF NOT EXISTS vector" \
  -c "SELECT extversion || ' ' || ('[1,2,3]'::vector <-> '[1,2,5]'::vector) FROM pg_extension WHERE extname = 'vector'")" ||
  die "CREATE EXTENSION vector failed on $PGHOST:$PGPORT"
[[ "$result" == *" 2" ]] || die "pgvector answered '$result' to a distance query, expected '<version> 2'"
"${PSQL[@]}" -d postgres -c "DROP DATABASE $CHECK_DB" || die "cannot drop the throwaway database $CHECK_DB"
trap - EXIT

log "PostgreSQL on $PGHOST:$PGPORT is ready, with pgvector ${result% *}"

# --- 4. and 5.: packages from apt -----------------------------------------------------

# apt_install <package>: installs a Debian package (as root, or through `sudo -n`), refreshing
# the package lists once if they are missing or stale.
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "$1 is missing and apt-get is not available to install it"
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "$1 is missing; install it as root: apt-get install $1"
    sudo=(sudo -n)
  fi
  log "installing Debian's $1 package for the tests (once)"
  local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y -q)
  "${apt[@]}" install "$1" >&2 ||
    { "${apt[@]}" update >&2 && "${apt[@]}" install "$1" >&2; } ||
    die "apt-get install $1 failed (see above)"
}

# 4. Chromium for the web console's browser tests
CHROMIUM="${PEAKDB_CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM" ]]; then
  [[ -z "${PEAKDB_CHROMIUM:-}" ]] || die "PEAKDB_CHROMIUM=$CHROMIUM is not an executable file"
  apt_install chromium
  [[ -x "$CHROMIUM" ]] || die "chromium was installed but $CHROMIUM is missing"
fi
log "Chromium: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"

# 5. for the network-namespace tests of relays (which need root): iproute2, nftables for the
#    NAT, and miniupnpd (its nftables build) for a router that forwards ports (UPnP)
command -v ip >/dev/null 2>&1 || apt_install iproute2
command -v nft >/dev/null 2>&1 || apt_install nftables
command -v nft >/dev/null 2>&1 || die "nftables was installed but nft is not on PATH"
[[ -x /usr/sbin/miniupnpd ]] || apt_install miniupnpd-nftables
[[ -x /usr/sbin/miniupnpd ]] || die "miniupnpd-nftables was installed but /usr/sbin/miniupnpd is missing"
log "nftables: $(nft --version); miniupnpd: /usr/sbin/miniupnpd"
