# timeseries.gp - ops/s over time for one load run.
# gnuplot -e "datafile='DAT'; outfile='PNG'; plottitle='TITLE' [; xmax=S; y2col=N; y2label='L']" timeseries.gp
# DAT: rows "t_s ops_per_s mb_per_s open" ('#' comments, '?' missing), as
# run.sh writes them from atoll-load's once-a-second --progress lines.
# y2col (optional): a second series on the right axis, e.g. 3 (MB/s) for
# bulk or 4 (open connections) for idle. xmax: the run's duration in seconds.
if (!exists("datafile")) datafile = 'timeseries.dat'
if (!exists("outfile")) outfile = 'timeseries.png'
if (!exists("plottitle")) plottitle = 'ops/s over time'
if (!exists("y2col")) y2col = 0
if (!exists("xmax")) xmax = 0
if (!exists("y2label")) y2label = ''
set terminal pngcairo size 900,450 font ",10"
set output outfile
set datafile missing "?"
set title plottitle
set xlabel "time (s)"
set ylabel "ops/s"
if (xmax > 0) { set xrange [0:xmax] } else { set xrange [0:*] }
set yrange [0:*]
set grid
set format y "%.0f"
set key bottom right
if (y2col > 0) {
    set y2label y2label
    set y2range [0:*]
    set y2tics
    set ytics nomirror
    plot datafile using 1:2 title "ops/s" with linespoints lw 2 pt 7 ps 0.6 lc rgb "#1f77b4", \
         datafile using 1:y2col axes x1y2 title y2label with linespoints lw 2 pt 5 ps 0.6 lc rgb "#d62728"
} else {
    plot datafile using 1:2 title "ops/s" with linespoints lw 2 pt 7 ps 0.6 lc rgb "#1f77b4"
}
