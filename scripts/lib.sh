# Shared helpers for the scripts in this folder. Source it; do not run it.

# Tools such as runuser live in sbin, which a minimal PATH may lack.
case ":$PATH:" in *":/usr/sbin:"*) ;; *) PATH="$PATH:/usr/sbin:/sbin" ;; esac
export PATH

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
# Installs Debian packages that are missing; runs `apt-get update` at most once per script.
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing Debian packages: ${missing[*]}"
  if [ "$APT_UPDATED" = 0 ]; then
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Prints how long a stage took; call `stage NAME` before and `stage_done` after.
STAGE_NAME=""
STAGE_START=0
STAGE_REPORT=""
stage() {
  STAGE_NAME="$1"
  STAGE_START=$(date +%s)
  echo
  echo "==> [$STAGE_NAME]"
}
stage_done() {
  local secs=$(( $(date +%s) - STAGE_START ))
  # Free disk after each stage: a CI machine's disk is finite and a full one fails the build.
  local free
  free=$(df -h --output=avail . 2>/dev/null | tail -n 1 | tr -d ' ') || free="?"
  STAGE_REPORT+=$(printf '%-28s %5ss   disk free %s' "$STAGE_NAME" "$secs" "${free:-?}")$'\n'
  echo "==> [$STAGE_NAME] done in ${secs}s"
}
stage_summary() {
  echo
  echo "Stage timings:"
  printf '%s' "$STAGE_REPORT"
  if [ -n "${CARGO_TARGET_DIR:-}" ] && [ -d "$CARGO_TARGET_DIR" ]; then
    echo "target dir: $(du -sh "$CARGO_TARGET_DIR" 2>/dev/null | cut -f1 || true)"
  fi
}
