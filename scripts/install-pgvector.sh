#!/usr/bin/env bash
# Installs the pgvector extension into the local PostgreSQL server (Debian/Ubuntu).
#
# Idempotent: when vector.control, its install script and vector.so are already in the
# server's directories this exits at once. Otherwise, in this order:
#   1. the distribution's postgresql-<major>-pgvector package, when the configured apt
#      sources have one;
#   2. else Debian's pgvector source package, fetched from the mirror the configured apt
#      sources already use (suite $PGVECTOR_SUITE, default trixie) through a private apt
#      state directory, so the system's apt configuration is left as it was; then built
#      against postgresql-server-dev-<major> with PGXS and installed with `make install`.
# Fails with a non-zero exit and a reason when it cannot.
#
# Environment (all optional):
#   PG_MAJOR          PostgreSQL major version to install for (default: the cluster
#                     listening on $PGPORT, else the newest one in /etc/postgresql)
#   PGPORT            port of the cluster to pick (default 5432)
#   PGVECTOR_SUITE    Debian suite to take the source package from (default trixie)
#   PGVECTOR_MIRROR   Debian mirror URI (default: the one the configured apt sources use)
set -euo pipefail

log() { printf 'install-pgvector: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# --- which PostgreSQL ---------------------------------------------------------------

pg_major() {
  if [[ -n "${PG_MAJOR:-}" ]]; then
    printf '%s\n' "$PG_MAJOR"
    return
  fi
  local port="${PGPORT:-5432}" major=""
  if command -v pg_lsclusters >/dev/null 2>&1; then
    major="$(pg_lsclusters --no-header 2>/dev/null | awk -v p="$port" '$3 == p && !n++ { print $1 }' || true)"
  fi
  if [[ -z "$major" && -d /etc/postgresql ]]; then
    major="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | grep -E '^[0-9]+$' | sort -n | tail -n 1 || true)"
  fi
  if [[ -z "$major" && -d /usr/lib/postgresql ]]; then
    major="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | grep -E '^[0-9]+$' | sort -n | tail -n 1 || true)"
  fi
  printf '%s\n' "$major"
}

MAJOR="$(pg_major)"
[[ "$MAJOR" =~ ^[0-9]+$ ]] ||
  die "no PostgreSQL server found (nothing in /etc/postgresql or /usr/lib/postgresql); install one first, e.g. apt-get install postgresql, or set PG_MAJOR"

PG_CONFIG="/usr/lib/postgresql/$MAJOR/bin/pg_config"
if [[ -x "$PG_CONFIG" ]]; then
  SHAREDIR="$("$PG_CONFIG" --sharedir)"
  PKGLIBDIR="$("$PG_CONFIG" --pkglibdir)"
else
  SHAREDIR="/usr/share/postgresql/$MAJOR"
  PKGLIBDIR="/usr/lib/postgresql/$MAJOR/lib"
fi
CONTROL="$SHAREDIR/extension/vector.control"
LIBRARY="$PKGLIBDIR/vector.so"

# The control file, the SQL script of its default version and the library must all be there.
installed_version() {
  [[ -f "$CONTROL" && -f "$LIBRARY" ]] || return 1
  local version
  version="$(sed -n "s/^[[:space:]]*default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" "$CONTROL")"
  [[ -n "$version" && -f "$SHAREDIR/extension/vector--$version.sql" ]] || return 1
  printf '%s\n' "$version"
}

if version="$(installed_version)"; then
  log "pgvector $version is already installed for PostgreSQL $MAJOR ($LIBRARY)"
  exit 0
fi

# --- from here on we install --------------------------------------------------------

[[ -x "/usr/lib/postgresql/$MAJOR/bin/postgres" ]] ||
  die "the PostgreSQL $MAJOR server is not installed (/usr/lib/postgresql/$MAJOR/bin/postgres is missing): install postgresql-$MAJOR first, or set PG_MAJOR"

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  if ! { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }; then
    die "pgvector is not installed for PostgreSQL $MAJOR and installing it needs root (run as root, or with passwordless sudo)"
  fi
  SUDO=(sudo -n)
fi
command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script installs pgvector on Debian-based systems only"

# One installer at a time; whoever waited re-checks, since the other may have done the work.
LOCK_FILE=/run/lock/peakdb-install-pgvector.lock
[[ -d /run/lock ]] || LOCK_FILE=/tmp/peakdb-install-pgvector.lock
exec 9>>"$LOCK_FILE" || die "cannot open the lock file $LOCK_FILE"
if ! flock -n 9; then
  log "another install of pgvector is running; waiting for it (at most 15 minutes)"
  flock -w 900 9 || die "timed out waiting for the lock $LOCK_FILE"
fi
if version="$(installed_version)"; then
  log "pgvector $version is already installed for PostgreSQL $MAJOR ($LIBRARY)"
  exit 0
fi

log "pgvector is not installed for PostgreSQL $MAJOR; installing it"
started=$SECONDS

export DEBIAN_FRONTEND=noninteractive
APT_GET=("${SUDO[@]}" apt-get -q -y -o DPkg::Lock::Timeout=600)

is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
has_candidate() {
  local candidate
  candidate="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2; exit }')"
  [[ -n "$candidate" && "$candidate" != "(none)" ]]
}

apt_updated=0
apt_update() {
  ((apt_updated)) && return 0
  log "apt-get update"
  "${APT_GET[@]}" update >&2 || die "apt-get update failed"
  apt_updated=1
}

# Installs the packages that are not installed yet (nothing else is upgraded).
apt_install() {
  local missing=() pkg
  for pkg in "$@"; do is_installed "$pkg" || missing+=("$pkg"); done
  ((${#missing[@]})) || return 0
  for pkg in "${missing[@]}"; do has_candidate "$pkg" || apt_update; done
  log "apt-get install ${missing[*]}"
  if ! "${APT_GET[@]}" install --no-install-recommends "${missing[@]}" >&2; then
    # The package lists may be stale (a removed version answers 404): refresh once, retry.
    ((apt_updated)) && die "apt-get install ${missing[*]} failed"
    apt_update
    "${APT_GET[@]}" install --no-install-recommends "${missing[@]}" >&2 ||
      die "apt-get install ${missing[*]} failed"
  fi
}

finish() {
  local version
  version="$(installed_version)" ||
    die "the install finished but $CONTROL, its SQL script or $LIBRARY is missing"
  log "installed pgvector $version for PostgreSQL $MAJOR in $((SECONDS - started)) s"
  exit 0
}

# Package lists never fetched on this machine: fetch them before deciding.
if ! has_candidate "postgresql-$MAJOR-pgvector" && ! has_candidate "postgresql-server-dev-$MAJOR"; then
  apt_update
fi

# 1. A package built for this PostgreSQL, when the configured sources have one.
if has_candidate "postgresql-$MAJOR-pgvector"; then
  apt_install "postgresql-$MAJOR-pgvector"
  finish
fi

# 2. Build Debian's source package.
apt_install "postgresql-server-dev-$MAJOR" make gcc dpkg-dev
[[ -x "$PG_CONFIG" ]] || die "$PG_CONFIG is missing after installing postgresql-server-dev-$MAJOR"

SUITE="${PGVECTOR_SUITE:-trixie}"

# The mirror the configured sources use for the distribution itself (not -security/-updates).
debian_mirror() {
  if [[ -n "${PGVECTOR_MIRROR:-}" ]]; then
    printf '%s\n' "$PGVECTOR_MIRROR"
    return
  fi
  local codename="" targets
  # shellcheck disable=SC1091
  codename="$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")"
  # shellcheck disable=SC2016 # apt's own $(FIELD) placeholders, not shell expansions
  targets="$(apt-get indextargets --no-release-info --format '$(TARGET_OF) $(RELEASE) $(REPO_URI)' 2>/dev/null |
    awk '$1 == "deb" || $1 == "deb-src"' | sort -u)"
  {
    # the entry for the release itself, then any entry that is not -security/-updates/-backports
    awk -v c="$codename" 'c != "" && $2 == c { print $3 }' <<<"$targets"
    awk '$2 !~ /-/ { print $3 }' <<<"$targets"
  } | awk '$0 !~ /security/' | awk 'NR == 1'
}

MIRROR="$(debian_mirror)"
[[ -n "$MIRROR" ]] ||
  die "cannot tell the Debian mirror from the configured apt sources (apt-get indextargets); set PGVECTOR_MIRROR"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -f "$KEYRING" ]] || die "$KEYRING is missing (package debian-archive-keyring): cannot verify the $SUITE sources"

WORK="$(mktemp -d /tmp/peakdb-pgvector.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"
mkdir -p "$WORK/sources.list.d" "$WORK/lists/partial" "$WORK/cache" "$WORK/src"
# apt downloads as the unprivileged _apt user where it can.
if [[ "$(id -u)" -eq 0 ]] && id _apt >/dev/null 2>&1; then chown _apt "$WORK/lists/partial" "$WORK/src"; fi
cat >"$WORK/sources.list.d/pgvector-src.sources" <<EOF
Types: deb-src
URIs: $MIRROR
Suites: $SUITE
Components: main
Signed-By: $KEYRING
EOF
# A private sources list, package lists and cache: nothing of the system's apt state changes.
APT_PRIVATE=(
  -o "Dir::Etc::SourceList=/dev/null"
  -o "Dir::Etc::SourceParts=$WORK/sources.list.d"
  -o "Dir::State::Lists=$WORK/lists"
  -o "Dir::Cache=$WORK/cache"
  -o "Dir::Cache::pkgcache="
  -o "Dir::Cache::srcpkgcache="
)

# Runs a step with its output in $WORK/<name>.log, shown only when the step fails.
step() {
  local name="$1" reason="$2"
  shift 2
  "$@" >"$WORK/$name.log" 2>&1 && return 0
  tail -n 40 "$WORK/$name.log" >&2
  die "$reason (the last lines of its output are above)"
}

log "fetching the pgvector source package from $MIRROR $SUITE"
step sources "cannot read the $SUITE sources from $MIRROR (apt-get update with a private deb-src list)" \
  apt-get -q "${APT_PRIVATE[@]}" update
# apt-get update exits 0 when a mirror cannot be reached: look for the index itself.
if ! compgen -G "$WORK/lists/*_source_Sources*" >/dev/null; then
  tail -n 20 "$WORK/sources.log" >&2
  die "no $SUITE source index could be fetched from $MIRROR (the output of apt-get update is above)"
fi
# apt checks each file against the hashes of the signed $SUITE index it just fetched.
cd "$WORK/src" # apt-get source downloads into the current directory
step fetch "apt-get source pgvector failed ($MIRROR $SUITE)" \
  apt-get -q "${APT_PRIVATE[@]}" source --download-only pgvector
DSC="$(find "$WORK/src" -maxdepth 1 -name 'pgvector_*.dsc' | awk 'NR == 1')"
[[ -n "$DSC" ]] || die "apt-get source pgvector downloaded no .dsc"
log "unpacking $(basename "$DSC") with Debian's patches"
step unpack "dpkg-source -x $(basename "$DSC") failed" dpkg-source -x "$DSC" "$WORK/src/pgvector"

log "building pgvector against $PG_CONFIG"
# OPTFLAGS= : a portable build (upstream defaults to -march=native; Debian's patch drops it too).
step build "building pgvector failed" \
  make -C "$WORK/src/pgvector" -j"$(nproc 2>/dev/null || echo 1)" PG_CONFIG="$PG_CONFIG" OPTFLAGS=
step install "make install of pgvector failed" \
  "${SUDO[@]}" make -C "$WORK/src/pgvector" install PG_CONFIG="$PG_CONFIG" OPTFLAGS=
finish
