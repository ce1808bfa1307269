#!/bin/sh
# The HTML report in a real browser: renders the report of the sample experiment
# (analysis/sample_experiment.h) in headless Chromium and checks that the page logs
# nothing to the console (no errors, no failed loads), references no network address,
# that its plots are in the DOM with one mark per run, and that its sections on where
# runs part, per class, across environments, the noise floor, the cost of determinism and the
# adaptive run count are there.
#
# usage: tests/html_report_test.sh PATH/TO/html_report_sample
# Exit 0 pass, 1 fail, 77 skipped (Chromium not installed; ctest's SKIP_RETURN_CODE).
# REPRO_SCREENSHOT=FILE.png also saves a screenshot of the page.
set -u

sample=${1:?usage: html_report_test.sh PATH/TO/html_report_sample}
chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium" ]; then
  echo "SKIP: chromium is not installed (Debian: apt-get install chromium)"
  exit 77
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() {
  echo "FAIL: $*"
  exit 1
}

# Renders $1 (a file) headless; the DOM goes to $work/$2.dom, Chromium's log to
# $work/$2.log. Extra flags (e.g. --screenshot=...) may follow.
render() {
  file=$1
  name=$2
  shift 2
  timeout 90 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic \
    --no-first-run --disable-background-networking --disable-component-update \
    --disable-sync --user-data-dir="$work/profile-$name" --enable-logging=stderr --v=0 \
    "$@" "file://$file" >"$work/$name.dom" 2>"$work/$name.log" ||
    fail "chromium exited with status $? on $file: $(tail -n 5 "$work/$name.log")"
}

"$sample" html >"$work/report.html" || fail "$sample html exited with status $?"
if grep -Eiq 'https?://' "$work/report.html"; then
  fail "the report references the network: $(grep -Eio 'https?://[^"< ]*' "$work/report.html" | head -n 3)"
fi

# The console check must be able to fail: a page with a script error is seen as one.
printf '<!DOCTYPE html><html><body><script>undefined_function();</script></body></html>\n' \
  >"$work/broken.html"
render "$work/broken.html" broken --dump-dom
grep -q ':CONSOLE' "$work/broken.log" ||
  fail "chromium's log shows no console message for a page with a script error; cannot check"

render "$work/report.html" report --dump-dom
if grep ':CONSOLE' "$work/report.log"; then
  fail "the report logged to the browser console (above)"
fi
dom="$work/report.dom"
grep -q '</html>' "$dom" || fail "no DOM came back: $(tail -n 5 "$work/report.log")"
grep -q '<h2>Where runs part</h2>' "$dom" || fail "no 'Where runs part' section in the DOM"
grep -q 'aten::convolution_backward (backward) in module conv1' "$dom" ||
  fail "the localization's operation is not in the DOM"
grep -q '<h2>Per class</h2>' "$dom" || fail "no 'Per class' section in the DOM"
n=$(grep -o '<table class="per-class">' "$dom" | wc -l)
[ "$n" -eq 4 ] || fail "expected a per-class table per arm (4), DOM has $n"
grep -q '<tr><td>9</td><td>19</td>' "$dom" || fail "the per-class tables lack class 9 (19 examples)"
grep -q '<h2>Across environments</h2>' "$dom" || fail "no 'Across environments' section in the DOM"
grep -q '<table class="matrix">' "$dom" || fail "no matrix of environments in the DOM"
grep -q '<td>epoch 0, 25 pairs, ratio ' "$dom" ||
  fail "the matrix lacks the cell of same_seed (1 thread) against threads_2 (2 threads)"
grep -q '<h2>Noise floor and time per epoch</h2>' "$dom" || fail "no noise floor section in the DOM"
grep -q '<td>binomial stdev ' "$dom" || fail "no arm's noise floor in the DOM"
grep -q '<h2>Cost of determinism</h2>' "$dom" || fail "no 'Cost of determinism' section in the DOM"
grep -q '<td>same_seed</td><td>nondeterministic</td><td>deterministic_algorithms</td><td>1.25</td>' "$dom" ||
  fail "the cost of determinism lacks same_seed against nondeterministic (overhead 1.25)"
grep -q 'runs for width 0.1' "$dom" || fail "the comparisons lack the runs needed"
grep -q '<h2>Adaptive run count</h2>' "$dom" || fail "no 'Adaptive run count' section in the DOM"
grep -q '<td>stopped: every arm settled</td>' "$dom" || fail "the adaptive looks lack the last one"
grep -q 'Outcome: stopped at look 2: the target was reached' "$dom" ||
  fail "the adaptive run count's outcome is not in the DOM"

svgs=$(grep -o '<svg ' "$dom" | wc -l)
[ "$svgs" -eq 7 ] || fail "expected 7 plots (2 strip, 4 validation, 1 divergence), DOM has $svgs"
# Marks of one plot: the lines between its <svg id="..."> and the next </svg>.
marks() {
  sed -n "/<svg id=\"$1\"/,/<\/svg>/p" "$dom" | grep -o "$2" | wc -l
}
for id in strip-accuracy strip-loss; do
  n=$(marks "$id" '<circle class="run"')
  [ "$n" -eq 20 ] || fail "$id: expected 20 run points (4 arms x 5 runs), DOM has $n"
  for arm in same_seed different_seeds threads_2 nondeterministic; do
    n=$(marks "$id" "<circle class=\"run\" data-arm=\"$arm\"")
    [ "$n" -eq 5 ] || fail "$id: expected 5 points of $arm, DOM has $n"
  done
done
for id in val-accuracy-0 val-accuracy-1 val-accuracy-2 val-accuracy-3; do
  n=$(marks "$id" '<polyline class="run"')
  [ "$n" -eq 5 ] || fail "$id: expected 5 run lines, DOM has $n"
done
n=$(marks divergence '<polyline class="arm"')
[ "$n" -eq 3 ] || fail "divergence: expected lines for same_seed, threads_2 and nondeterministic, DOM has $n"
n=$(marks divergence '<circle class="point"')
[ "$n" -eq 18 ] || fail "divergence: expected 3 arms x 6 epochs points, DOM has $n"

if [ -n "${REPRO_SCREENSHOT:-}" ]; then
  render "$work/report.html" screenshot --window-size=1200,3200 \
    --screenshot="$REPRO_SCREENSHOT"
  [ -s "$REPRO_SCREENSHOT" ] || fail "no screenshot written to $REPRO_SCREENSHOT"
  echo "screenshot: $REPRO_SCREENSHOT"
fi
echo "PASS: the HTML report renders in $($chromium --version 2>/dev/null | head -n 1) with no console messages and all its plots"
