#!/usr/bin/env bash
# Installs the Shoal agent as a systemd service, or removes it.
#
#   deploy/install.sh [BINARY]            install BINARY (default ./bin/shoal)
#   deploy/install.sh --uninstall         remove binary and unit; keep config and state
#   deploy/install.sh --uninstall --purge also remove /etc/shoal and /var/lib/shoal
#
# Options:
#   --prefix DIR   binary goes to DIR/bin (default /usr/local)
#   --root DIR     install into DIR instead of / (for packaging and tests);
#                  systemctl is then never run
#
# Installs:
#   <prefix>/bin/shoal                   the agent (replaced on every run)
#   /etc/systemd/system/shoal.service    the unit (replaced on every run)
#   /etc/shoal/config.yaml               the default config, only if absent:
#                                        an existing one is never overwritten
# then, when systemd is running, daemon-reload and enable --now (and a
# restart when an already running agent's binary or unit changed).
# Running it again with the same files changes nothing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prog=shoal-install

say() { printf '%s: %s\n' "$prog" "$*"; }
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

root=/
prefix=/usr/local
binary=
uninstall=false
purge=false
while (($# > 0)); do
  case $1 in
    --root) [[ $# -ge 2 ]] || die "--root needs a directory"; root=$2; shift 2 ;;
    --root=*) root=${1#*=}; shift ;;
    --prefix) [[ $# -ge 2 ]] || die "--prefix needs a directory"; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --uninstall) uninstall=true; shift ;;
    --purge) purge=true; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [[ -z $binary ]] || die "more than one binary given: $binary and $1"; binary=$1; shift ;;
  esac
done
[[ $prefix == /* ]] || die "--prefix must be an absolute path, not $prefix"
$purge && ! $uninstall && die "--purge only goes with --uninstall"
if $uninstall && [[ -n $binary ]]; then die "--uninstall takes no binary"; fi
[[ -d $root ]] || die "--root $root is not a directory"
root=$(cd "$root" && pwd)
r=${root%/} # prefix for every installed path; empty for the real root

bin_path=$prefix/bin/shoal
unit_path=/etc/systemd/system/shoal.service
config_dir=/etc/shoal
config_path=$config_dir/config.yaml
state_dirs=(/var/lib/shoal /var/lib/private/shoal) # DynamicUser keeps state under private/

# systemctl runs only against the live system: not with --root, and only
# when systemd is PID 1 (the test sd_booted(3) uses).
systemd_live() { [[ -z $r && -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; }

if [[ -z $r && $(id -u) -ne 0 ]]; then
  die "installing into / needs root (or use --root DIR)"
fi

# install_file SRC DST MODE: atomically replaces DST with SRC unless they are
# identical; prints what it did and returns 0 when DST changed, 1 when not.
install_file() {
  local src=$1 dst=$2 mode=$3
  if [[ -f $dst ]] && cmp -s "$src" "$dst"; then
    say "unchanged $dst"
    return 1
  fi
  mkdir -p "$(dirname "$dst")"
  local tmp
  tmp=$(mktemp "$(dirname "$dst")/.$(basename "$dst").XXXXXX")
  # A rename, not a write in place: a running agent keeps its old binary.
  if ! install -m "$mode" "$src" "$tmp" || ! mv -f "$tmp" "$dst"; then
    rm -f "$tmp"
    die "could not write $dst"
  fi
  say "installed $dst"
  return 0
}

do_install() {
  if [[ -z $binary ]]; then
    [[ -x ./bin/shoal ]] || die "no binary given and no ./bin/shoal here (run make build in the checkout, or pass the binary's path)"
    binary=./bin/shoal
  fi
  [[ -f $binary && -x $binary ]] || die "$binary is not an executable file"
  "$binary" version >/dev/null 2>&1 || die "$binary does not run here ('$binary version' failed): wrong architecture?"
  [[ -f $here/systemd/shoal.service && -f $here/shoal.yaml ]] ||
    die "$here/systemd/shoal.service or $here/shoal.yaml is missing: run this script from a Shoal checkout or release"

  local changed=false
  install_file "$binary" "$r$bin_path" 0755 && changed=true

  # The unit names /usr/local/bin/shoal; follow --prefix.
  local unit
  unit=$(mktemp)
  sed "s#^ExecStart=/usr/local/bin/shoal #ExecStart=$bin_path #" "$here/systemd/shoal.service" >"$unit"
  install_file "$unit" "$r$unit_path" 0644 && changed=true
  rm -f "$unit"

  if [[ -e $r$config_path ]]; then
    say "kept existing $r$config_path (the shipped default is $here/shoal.yaml)"
  else
    mkdir -p "$r$config_dir"
    install -m 0644 "$here/shoal.yaml" "$r$config_path"
    say "installed $r$config_path (defaults; edit it, then systemctl restart shoal)"
  fi

  if ! systemd_live; then
    if [[ -n $r ]]; then
      say "--root given: not running systemctl"
    else
      say "systemd is not running here: not enabling the service; start it with '$bin_path agent --config $config_path'"
    fi
    return
  fi
  systemctl daemon-reload
  if $changed && systemctl is-active --quiet shoal.service; then
    systemctl enable shoal.service
    systemctl restart shoal.service
    say "restarted shoal.service with the new files"
  else
    systemctl enable --now shoal.service
    say "enabled and started shoal.service"
  fi
  say "check it with: systemctl status shoal; $bin_path status"
}

do_uninstall() {
  if systemd_live; then
    if systemctl list-unit-files shoal.service >/dev/null 2>&1; then
      systemctl disable --now shoal.service >/dev/null 2>&1 || true
      say "stopped and disabled shoal.service"
    fi
  elif [[ -n $r ]]; then
    say "--root given: not running systemctl"
  else
    say "systemd is not running here: not stopping any service"
  fi
  local f
  for f in "$r$unit_path" "$r$bin_path"; do
    if [[ -e $f ]]; then
      rm -f "$f"
      say "removed $f"
    else
      say "already absent: $f"
    fi
  done
  if systemd_live; then
    systemctl daemon-reload
  fi
  if $purge; then
    for f in "$r$config_dir" "${state_dirs[@]/#/$r}"; do
      if [[ -e $f || -L $f ]]; then
        rm -rf "$f"
        say "purged $f"
      fi
    done
  else
    say "kept $r$config_dir and $r${state_dirs[0]} (cache and state); --uninstall --purge removes them"
  fi
}

if $uninstall; then
  do_uninstall
else
  do_install
fi
