/*
 * tools/atoll-load/histogram.c: the latency histogram: log-bucketed, 32
 * linear sub-buckets per power of two, fixed size; recording a value,
 * merging the isolates' histograms, and reading percentiles.
 */
#include "load.h"

static unsigned hist_index(uint64_t v)
{
    unsigned msb = v ? 63u - (unsigned)__builtin_clzll(v) : 0;
    unsigned shift = msb > HIST_SUB_BITS ? msb - HIST_SUB_BITS : 0;
    return shift * HIST_SUB + (unsigned)(v >> shift);
}

/* Highest value that falls in bucket i. */
static uint64_t hist_bucket_high(unsigned i)
{
    if (i < 2 * HIST_SUB)
        return i;
    unsigned shift = i / HIST_SUB - 1;
    uint64_t m = i - shift * HIST_SUB;
    return ((m + 1) << shift) - 1;
}

void hist_record(hist *h, uint64_t v)
{
    h->b[hist_index(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
    if (h->count == 1 || v < h->min)
        h->min = v;
}

void hist_merge(hist *into, const hist *from)
{
    if (!from->count)
        return;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        into->b[i] += from->b[i];
    if (!into->count || from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
    into->count += from->count;
    into->sum += from->sum;
}

uint64_t hist_percentile(const hist *h, double p)
{
    if (!h->count)
        return 0;
    uint64_t rank = (uint64_t)(p * (double)h->count + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t v = hist_bucket_high(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}
