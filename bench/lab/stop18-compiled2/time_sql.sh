#!/bin/sh
# time_sql.sh URL FILE [runs]: mean execution and planning ms of a statement (as the API role, rolled back)
url=$1; file=$2; runs=${3:-20}
( echo "set role vaxvault_api;"; i=0; while [ $i -lt $runs ]; do echo "begin; explain (analyze, summary, timing off, costs off) "; cat $file; echo "rollback;"; i=$((i+1)); done ) | psql $url -q 2>&1 | \
  awk '/Execution Time/ {e+=$3; n++} /Planning Time/ {p+=$3} END {printf "exec %.3f ms, plan %.3f ms (n=%d)\n", e/n, p/n, n}'
