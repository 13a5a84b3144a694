# latency.gp - latency percentiles per scenario as clustered bars (log scale).
# gnuplot -e "datafile='DAT'; outfile='PNG'; plottitle='TITLE'" latency.gp
# DAT: "scenario p50 p90 p99 p999 max" rows in microseconds ('#' comments).
if (!exists("datafile")) datafile = 'latency.dat'
if (!exists("outfile")) outfile = 'latency.png'
if (!exists("plottitle")) plottitle = 'latency percentiles'
set terminal pngcairo size 900,450 font ",10"
set output outfile
set title plottitle
set ylabel "latency (µs, log scale)"
set logscale y
set format y "10^{%L}"
set grid ytics
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key top left
set xtics nomirror
plot datafile using 2:xtic(1) title "p50", \
     '' using 3 title "p90", \
     '' using 4 title "p99", \
     '' using 5 title "p99.9", \
     '' using 6 title "max"
