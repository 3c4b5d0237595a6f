# Shared assertions for the quilt-cli shell tests, sourced by test_*.sh.
# A test is `begin NAME`, any number of want_* checks on the last command's
# $rc, $out/$err (and $TMP/out, $TMP/err), then `end`; the script keeps the
# counters $pass/$fail and prints "N passed, N failed" itself. Needs $TMP and
# $PY (/usr/bin/python3) set by the script.

begin() {
  name=$1
  problems=()
}

want_rc() { [ "$rc" = "$1" ] || problems+=("exit code $rc, want $1" "stderr: $err"); }

want_out() { grep -qF -- "$1" "$TMP/out" || problems+=("stdout lacks: $1" "stdout: $out"); }

want_out_is() { [ "$out" = "$1" ] || problems+=("stdout: $out" "want:   $1"); }

want_out_re() { grep -qE -- "$1" "$TMP/out" || problems+=("stdout lacks /$1/" "stdout: $out"); }

want_err() { grep -qF -- "$1" "$TMP/err" || problems+=("stderr lacks: $1" "stderr: $err"); }

want_err_is() { [ "$err" = "$1" ] || problems+=("stderr: $err" "want:   $1"); }

want_no_err() { [ -z "$err" ] || problems+=("unexpected stderr: $err"); }

want_one_err_line() {
  [ "$(wc -l <"$TMP/err")" = 1 ] || problems+=("want one line on stderr, got: $err")
}

# want_json PYTHON-EXPR: evaluated with d = the parsed stdout.
want_json() {
  "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($1) else 1)" \
    "$TMP/out" 2>/dev/null || problems+=("JSON check failed: $1" "stdout: $out")
}

# stdout is one JSON document / JSON Lines, as json.tool sees it.
want_json_doc() {
  "$PY" -m json.tool "$TMP/out" >/dev/null 2>&1 || problems+=("stdout is not JSON: $out")
}

end() {
  if [ ${#problems[@]} -eq 0 ]; then
    pass=$((pass + 1))
    echo "ok - $name"
  else
    fail=$((fail + 1))
    echo "not ok - $name"
    printf '    %s\n' "${problems[@]}"
  fi
}
