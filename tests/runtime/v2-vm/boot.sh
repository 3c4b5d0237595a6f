# shellcheck shell=bash
# Sourced by run and quiltd-test: boots the VM with a watchdog. Under TCG a
# boot now and then hangs before init prints anything (seen on a loaded
# 2-core host: qemu spinning at full CPU, an empty console for 10 minutes);
# a second boot goes through. So: if init has said nothing within
# $boot_watchdog seconds, the VM is killed and booted once more.
#
# vm_boot OUT QEMU_ARGS...: the console (CRs removed) ends up in OUT and on
# stdout; sets qemu_rc.
boot_watchdog=${QUILT_VM_BOOT_WATCHDOG:-150}

vm_boot() {
  local out=$1 attempt pid waited
  shift
  for attempt in 1 2; do
    : >"$out.raw"
    timeout --foreground -k 10 "$vm_timeout" qemu-system-x86_64 "$@" \
      </dev/null >"$out.raw" 2>&1 &
    pid=$!
    waited=0
    while kill -0 "$pid" 2>/dev/null; do
      if [ "$waited" -ge "$boot_watchdog" ] && ! grep -aq 'QUILT-VM' "$out.raw"; then
        log "init said nothing in ${boot_watchdog}s (boot $attempt): killing the VM"
        kill "$pid" 2>/dev/null
        break
      fi
      sleep 1
      waited=$((waited + 1))
    done
    wait "$pid"
    qemu_rc=$?
    tr -d '\r' <"$out.raw" >"$out"
    rm -f "$out.raw"
    cat "$out"
    grep -aq 'QUILT-VM' "$out" && return 0
  done
  return 0
}
