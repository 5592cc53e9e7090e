#!/bin/bash
# ncu profile of variant $1 (index into variants[]) at N = K = 8192, M = 1 (4th launch).
OUT=${OUT:-/tmp/fp4out}; mkdir -p $OUT
ncu --launch-skip 3 --launch-count 1 --section SpeedOfLight --section WarpStateStats --section SchedulerStats \
  --section MemoryWorkloadAnalysis --section LaunchStats --section Occupancy --metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active.ratio /tmp/fp4 prof ${1:-0} > $OUT/ncu_$1.txt 2>&1
grep -E "Duration|DRAM Throughput|Memory Throughput|Compute \(SM\)|Issue Slots Busy|Eligible Warps|No Eligible|Stall|Warp Cycles Per Issued|Achieved Occupancy|Registers Per|Executed Ipc A|L2 Hit|Mem Busy|Max Bandwidth" $OUT/ncu_$1.txt | head -40
grep -E "issue_stalled" $OUT/ncu_$1.txt | sort -k3 -n -r | head -8
