# Draws docs/soak.png from docs/soak.csv (written by `conveyor bench --phases
# soak --csv docs/soak.csv`; `make soak` runs both).
set datafile separator ","
set terminal pngcairo size 1200,900 font ",10"
set output "docs/soak.png"
set multiplot layout 3,1 title "conveyor soak: half the measured maximum rate, 1 job in 20 failing, retention on, a snapshot a minute"
set key outside right
set grid
set xlabel "seconds"
set ylabel "ms"
set title "enqueue-to-start latency (per 10 s window) and the longest commit"
plot "docs/soak.csv" using 1:3 with lines lw 2 title "p50", \
     "" using 1:4 with lines lw 2 title "p99", \
     "" using 1:9 with lines lw 1 title "longest commit"
set ylabel "jobs/s"
set title "jobs processed"
plot "docs/soak.csv" using 1:2 with lines lw 2 title "processed/s"
set ylabel "MB"
set title "memory and the queue file"
plot "docs/soak.csv" using 1:6 with lines lw 2 title "rss", \
     "" using 1:7 with lines lw 2 title "file live", \
     "" using 1:8 with lines lw 1 title "file allocated"
unset multiplot
