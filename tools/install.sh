#!/usr/bin/env bash
# Install edge-face as a systemd service on a Debian/Ubuntu box (run as root from a clone).
# Re-running it upgrades (config and gallery kept); --uninstall removes it. See --help.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX=/opt/edge-face
ETC=/etc/edge-face
DATA=/var/lib/edge-face
SVC_USER=edge-face
UNIT_DIR=/etc/systemd/system
BIN_DIR=/usr/local/bin
PYTHON=/usr/bin/python3
MIRROR=""
SYSTEMD=1
ACTION=install
PURGE=0
UNITS=(edge-face.service edge-face-camera@.service)

usage() {
  cat <<EOF
usage: tools/install.sh [OPTIONS]          install or upgrade the service (as root)
       tools/install.sh --uninstall [--purge] [OPTIONS]

Installs edge-face from this clone as a service that does not depend on the clone:
a virtual environment built with 'pip install .' under PREFIX/releases/ (PREFIX/venv points
at the current one), a system user, a config in ETC (created from a commented template
when absent, never overwritten), data and models in DATA (mode 0700, owned by the
service user) and the systemd units, enabled and (re)started. Running it again upgrades:
an unchanged source tree reuses its release (no pip), the config and the gallery are kept,
and the previous release stays for a rollback. Needs python3-venv (installed with
apt-get when missing).

options:
  --prefix DIR     install prefix (default $PREFIX)
  --etc DIR        config directory (default $ETC)
  --data DIR       data directory for a new config (default $DATA); an existing
                   config's data_dir wins
  --user NAME      service user, created as a system user when missing (default $SVC_USER)
  --from DIR       install the models from this folder (offline sites) instead of
                   downloading them from their public sources
  --python PATH    the interpreter for the venv (default $PYTHON, the distribution's)
  --unit-dir DIR   where the units go (default $UNIT_DIR)
  --bin-dir DIR    where the 'edge-face' command goes (default $BIN_DIR)
  --no-systemd     write the units but do not call systemctl (containers, tests)
  --uninstall      stop and remove the units, the prefix and the command; the config and
                   the data (gallery, keys, models) are kept
  --purge          with --uninstall: also delete the config, the data and the user
  -h, --help       this help
EOF
}

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "==> $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --etc) ETC="${2:?--etc needs a directory}"; shift 2 ;;
    --data) DATA="${2:?--data needs a directory}"; shift 2 ;;
    --user) SVC_USER="${2:?--user needs a name}"; shift 2 ;;
    --from) MIRROR="${2:?--from needs a directory}"; shift 2 ;;
    --python) PYTHON="${2:?--python needs a path}"; shift 2 ;;
    --unit-dir) UNIT_DIR="${2:?--unit-dir needs a directory}"; shift 2 ;;
    --bin-dir) BIN_DIR="${2:?--bin-dir needs a directory}"; shift 2 ;;
    --no-systemd) SYSTEMD=0; shift ;;
    --uninstall) ACTION=uninstall; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
done
[ "$PURGE" = 1 ] && [ "$ACTION" != uninstall ] && die "--purge goes with --uninstall"
[ "$(id -u)" = 0 ] || die "run as root (sudo $0 $*): it creates a user, /etc and /var/lib entries"
for d in PREFIX ETC DATA UNIT_DIR BIN_DIR; do
  case "${!d}" in /*) ;; *) die "$d must be an absolute path (got '${!d}')" ;; esac
done
[ -z "$MIRROR" ] || MIRROR="$(cd "$MIRROR" 2>/dev/null && pwd)" || die "--from: no such directory"
cd /  # from here on, nothing may import the clone's sources by accident

# systemctl only when asked and when systemd really runs this box (not in a container).
systemd_up() { [ "$SYSTEMD" = 1 ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }
WRAPPER_MARK="# edge-face command installed by tools/install.sh"

# Paths that --uninstall --purge must never delete, whatever the options said.
refuse_system_dir() {
  case "${1%/}" in
    ""|/etc|/var|/var/lib|/opt|/usr|/usr/local|/usr/local/bin|/home|/root|/tmp|/srv)
      die "refusing to delete '$1': give the edge-face directory itself" ;;
  esac
}

uninstall() {
  # The data dir the service really used is the one its config names.
  if [ -x "$PREFIX/venv/bin/edge-face" ] && [ -f "$ETC/config.yaml" ]; then
    DATA="$(EDGE_CONFIG="$ETC/config.yaml" "$PREFIX/venv/bin/python" -I -c \
      'from edge.config import load_settings; print(load_settings().data_dir)' 2>/dev/null ||
      echo "$DATA")"
  fi
  if [ "$PURGE" = 1 ]; then refuse_system_dir "$ETC"; refuse_system_dir "$DATA"; fi
  if systemd_up; then
    systemctl disable --now edge-face.service >/dev/null 2>&1 || true
    for link in "$UNIT_DIR"/*.wants/edge-face-camera@*.service; do
      [ -e "$link" ] || [ -L "$link" ] || continue
      systemctl disable --now "$(basename "$link")" >/dev/null 2>&1 || true
    done
    systemctl stop 'edge-face-camera@*.service' >/dev/null 2>&1 || true
  fi
  for u in "${UNITS[@]}"; do rm -f "$UNIT_DIR/$u"; done
  if systemd_up; then systemctl daemon-reload; fi
  if [ -f "$BIN_DIR/edge-face" ] && grep -qF "$WRAPPER_MARK" "$BIN_DIR/edge-face"; then
    rm -f "$BIN_DIR/edge-face"
  fi
  rm -rf "$PREFIX/releases" "$PREFIX/venv" "$PREFIX/venv.new" "$PREFIX/README.md"
  rmdir "$PREFIX" 2>/dev/null || true  # only what install.sh put there
  say "removed the units, $PREFIX and $BIN_DIR/edge-face"
  if [ "$PURGE" = 1 ]; then
    rm -rf "$ETC" "$DATA"
    if id "$SVC_USER" >/dev/null 2>&1; then userdel "$SVC_USER" 2>/dev/null || true; fi
    if getent group "$SVC_USER" >/dev/null; then groupdel "$SVC_USER" 2>/dev/null || true; fi
    say "purged $ETC, $DATA (gallery, keys, models) and the user $SVC_USER"
  else
    say "kept the config ($ETC) and the data ($DATA: gallery, keys, models);" \
        "'--uninstall --purge' deletes them"
  fi
}

if [ "$ACTION" = uninstall ]; then uninstall; exit 0; fi

# 1. Python with venv ----------------------------------------------------------------------
[ -x "$PYTHON" ] || die "no Python at $PYTHON (apt-get install python3, or pass --python)"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' ||
  die "edge-face needs Python >= 3.10 ($PYTHON is $("$PYTHON" --version 2>&1))"
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  command -v apt-get >/dev/null || die "the venv module is missing: install python3-venv"
  say "installing python3-venv"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi

# 2. The service user ----------------------------------------------------------------------
if ! id "$SVC_USER" >/dev/null 2>&1; then
  say "creating system user $SVC_USER"
  useradd --system --user-group --home-dir "$DATA" --no-create-home \
    --shell /usr/sbin/nologin --comment "edge-face service" "$SVC_USER"
fi
SVC_GROUP="$(id -gn "$SVC_USER")"

# 3. A release venv, built from a copy of the sources (the clone is left untouched) --------
VERSION="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$SRC/pyproject.toml" | head -n1)"
# What `pip install .` reads: the tree without the venv, VCS, build outputs and tests.
source_files() {
  (cd "$SRC" && find . \( -name .git -o -name .venv -o -name build -o -name dist \
      -o -name '*.egg-info' -o -name __pycache__ -o -name '.*_cache' -o -name .hypothesis \
      -o -path ./tests -o -path ./docs \) -prune -o -type f ! -name '*.pyc' -print0 |
    LC_ALL=C sort -z)
}
HASH="$(source_files | (cd "$SRC" && xargs -0 sha256sum) | sha256sum | cut -c1-12)"
RELEASE="$VERSION-$HASH"
REL_DIR="$PREFIX/releases/$RELEASE"
mkdir -p "$PREFIX/releases"
chmod 0755 "$PREFIX" "$PREFIX/releases"
if [ -f "$REL_DIR/.edge-face-release" ]; then
  say "release $RELEASE is already built: reusing it (no pip)"
else
  say "building release $RELEASE in $REL_DIR (pip install .)"
  rm -rf "$REL_DIR"
  STAGE="$(mktemp -d)"
  trap 'rm -rf "$STAGE"' EXIT
  source_files | (cd "$SRC" && tar --null -T - -cf -) | tar -xf - -C "$STAGE"
  "$PYTHON" -m venv "$REL_DIR"
  if ! "$REL_DIR/bin/python" -m pip install -q --disable-pip-version-check "$STAGE"; then
    rm -rf "$REL_DIR"
    die "pip install failed (see above); the installed release was not changed"
  fi
  "$REL_DIR/bin/edge-face" --version >/dev/null || { rm -rf "$REL_DIR"; die "the new release does not run"; }
  printf 'release=%s\nsource=%s\nbuilt=%s\n' "$RELEASE" "$SRC" "$(date -u +%FT%TZ)" \
    >"$REL_DIR/.edge-face-release"
fi
chmod -R a+rX,go-w "$REL_DIR"
# Config, models and key are prepared with the new release before it replaces the old one.
EF_NEW="$REL_DIR/bin/edge-face"

# 4. Config: created from the template when absent, never overwritten ---------------------
mkdir -p "$ETC"
chmod 0755 "$ETC"
sed "s|@DATA_DIR@|$DATA|" "$SRC/configs/edge-face.yaml" >"$ETC/config.yaml.example"
chmod 0644 "$ETC/config.yaml.example"
if [ ! -e "$ETC/config.yaml" ]; then
  say "writing $ETC/config.yaml from the template"
  install -m 0640 -o root -g "$SVC_GROUP" "$ETC/config.yaml.example" "$ETC/config.yaml"
else
  say "keeping $ETC/config.yaml (the new template is $ETC/config.yaml.example)"
fi
# The config decides where the data is; reading it also validates it before any restart.
EFFECTIVE="$(EDGE_CONFIG="$ETC/config.yaml" "$EF_NEW" config show --json)" ||
  die "$ETC/config.yaml is not valid (see above); fix it and run install.sh again"
ASKED_DATA="$DATA"
read -r DATA MODEL_DIR KEY_FILE < <(printf '%s' "$EFFECTIVE" | "$REL_DIR/bin/python" -I -c '
import json, sys
c = json.load(sys.stdin)
d = c["data_dir"]
key_file = "-" if c["server"]["api_keys"] else c["server"]["api_key_file"] or d + "/api-key"
print(d, c["models"]["dir"] or d + "/models", key_file)')

# 5. Data and models -----------------------------------------------------------------------
[ "$DATA" = "$ASKED_DATA" ] ||
  say "NOTE: $ETC/config.yaml sets data_dir: $DATA, which wins over --data $ASKED_DATA"
mkdir -p "$DATA"
say "installing the models into $MODEL_DIR${MIRROR:+ from $MIRROR}"
EDGE_CONFIG="$ETC/config.yaml" "$EF_NEW" models fetch --dir "$MODEL_DIR" ${MIRROR:+--from "$MIRROR"}
# The api-key is made here rather than at the first start, which would print it into the
# journal; keys configured in the config (server.api_keys) need none.
if [ "$KEY_FILE" != - ] && [ ! -s "$KEY_FILE" ]; then
  EDGE_CONFIG="$ETC/config.yaml" "$EF_NEW" keys rotate >/dev/null
  say "generated an api-key in $KEY_FILE (mode 0600)"
fi
chown -R "$SVC_USER:$SVC_GROUP" "$DATA"
chmod 0700 "$DATA"

# 6. Switch to the new release --------------------------------------------------------------
PREVIOUS="$(readlink "$PREFIX/venv" 2>/dev/null || true)"
ln -sfn "releases/$RELEASE" "$PREFIX/venv.new"
mv -Tf "$PREFIX/venv.new" "$PREFIX/venv"
install -m 0644 "$SRC/README.md" "$PREFIX/README.md"
# Keep the current and the previous release (rollback: ln -sfn releases/OLD PREFIX/venv).
if [ "$PREVIOUS" != "releases/$RELEASE" ]; then
  for r in "$PREFIX"/releases/*; do
    case "releases/$(basename "$r")" in "releases/$RELEASE"|"$PREVIOUS") ;; *) rm -rf "$r" ;; esac
  done
fi
EF="$PREFIX/venv/bin/edge-face"

# 7. The command, and the units ------------------------------------------------------------
mkdir -p "$BIN_DIR" "$UNIT_DIR"
cat >"$BIN_DIR/edge-face.new" <<EOF
#!/bin/sh
$WRAPPER_MARK: the service's config unless -c or EDGE_CONFIG says otherwise.
export EDGE_CONFIG="\${EDGE_CONFIG:-$ETC/config.yaml}"
exec "$EF" "\$@"
EOF
chmod 0755 "$BIN_DIR/edge-face.new"
mv -f "$BIN_DIR/edge-face.new" "$BIN_DIR/edge-face"
for u in "${UNITS[@]}"; do
  sed -e "s|/opt/edge-face/|$PREFIX/|g" -e "s|/etc/edge-face/|$ETC/|g" \
      -e "s|/var/lib/edge-face|$DATA|g" \
      -e "s|^User=edge-face\$|User=$SVC_USER|" -e "s|^Group=edge-face\$|Group=$SVC_GROUP|" \
      "$SRC/systemd/$u" >"$UNIT_DIR/$u.new"
  chmod 0644 "$UNIT_DIR/$u.new"
  mv -f "$UNIT_DIR/$u.new" "$UNIT_DIR/$u"
done
say "units written to $UNIT_DIR: ${UNITS[*]}"

if systemd_up; then
  systemctl daemon-reload
  systemctl enable edge-face.service >/dev/null
  say "starting edge-face.service (waits until the models are warm)"
  systemctl restart edge-face.service
  # Camera workers that were running pick up the new release too.
  systemctl try-restart 'edge-face-camera@*.service' || true
elif [ "$SYSTEMD" = 1 ]; then
  say "systemd is not running here: enable later with 'systemctl enable --now edge-face'"
fi
say "installed edge-face $RELEASE"
printf '    %-8s %s\n' \
  config "$ETC/config.yaml (edit it, then: systemctl restart edge-face)" \
  data "$DATA (gallery, api-key, models; mode 0700)" \
  command "$BIN_DIR/edge-face (edge-face backup FILE, edge-face keys rotate, ...)"
if [ "$KEY_FILE" != - ]; then printf '    %-8s %s\n' api-key "sudo head -n1 $KEY_FILE"; fi
