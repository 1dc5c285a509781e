# Shared by the benchmark scripts (sourced after they cd to the repository root).

# Reads pgbench per-transaction logs (-l) on stdin and prints "median p99" of their latencies in
# ms, three decimals ("0 0" when there is no transaction).
percentiles() {
  awk '{print $3}' | sort -n \
    | awk '{a[NR]=$1} END {if (NR==0) {print "0 0"} else {i=int(NR*0.99); if (i<1) i=1; printf "%.3f %.3f\n", a[int((NR+1)/2)]/1000, a[i]/1000}}'
}
