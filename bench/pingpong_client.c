/*
 * pingpong_client.c — request/response latency: 1-byte ping-pong over one TCP connection.
 *
 *   pingpong_client IP PORT [ROUNDS [WARMUP]]          defaults: 10000 rounds, 100 warm-up
 *
 * Connects, turns TCP_NODELAY on, does WARMUP untimed round trips (first-use costs: page
 * faults, ARP, slow paths), then ROUNDS timed ones: write 1 byte, read 1 byte back, each
 * timed on its own with clock_gettime(CLOCK_MONOTONIC). Prints one line
 *   rounds=N p50_us=X p99_us=X min_us=X mean_us=X max_us=X p90_us=X p999_us=X
 * (percentiles by nearest rank) and exits 0; any error exits 1 with a message on stderr.
 */
#include "bench_util.h"

static const char *prog = "pingpong_client";

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted[0..n), p in tenths of a percent: the smallest value with
 * at least p/10 % of the values at or below it. */
static double percentile_us(const uint64_t *sorted, size_t n, unsigned p)
{
	size_t rank = (n * p + 999) / 1000;
	if (rank == 0)
		rank = 1;
	return (double)sorted[rank - 1] / 1000.0;
}

static void round_trip(int fd, long i)
{
	char out = (char)('a' + i % 26), in;
	if (write_full(fd, &out, 1) < 0)
		die(prog, "write (round %ld): %s", i, strerror(errno));
	ssize_t n = read_full(fd, &in, 1);
	if (n == 0)
		die(prog, "server closed the connection (round %ld)", i);
	if (n < 0)
		die(prog, "read (round %ld): %s", i, strerror(errno));
	if (in != out)
		die(prog, "echo mismatch (round %ld): sent %d got %d", i, out, in);
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 5) {
		fprintf(stderr, "usage: %s IP PORT [ROUNDS [WARMUP]]\n", prog);
		return 2;
	}
	struct sockaddr_in addr = parse_addr(prog, argv[1], parse_num(prog, "port", argv[2], 1, 65535));
	long rounds = argc > 3 ? parse_num(prog, "rounds", argv[3], 1, 100000000) : 10000;
	long warmup = argc > 4 ? parse_num(prog, "warm-up", argv[4], 0, 100000000) : 100;

	uint64_t *rtt = calloc((size_t)rounds, sizeof(*rtt));
	if (rtt == NULL)
		die(prog, "out of memory");
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die(prog, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		die(prog, "connect %s:%s: %s", argv[1], argv[2], strerror(errno));
	set_nodelay(prog, fd);

	for (long i = 0; i < warmup; i++)
		round_trip(fd, i);
	for (long i = 0; i < rounds; i++) {
		uint64_t t0 = now_ns();
		round_trip(fd, i);
		rtt[i] = now_ns() - t0;
	}
	close(fd);

	double sum = 0;
	for (long i = 0; i < rounds; i++)
		sum += (double)rtt[i];
	qsort(rtt, (size_t)rounds, sizeof(*rtt), cmp_u64);
	printf("rounds=%ld p50_us=%.1f p99_us=%.1f min_us=%.1f mean_us=%.1f max_us=%.1f "
	       "p90_us=%.1f p999_us=%.1f\n",
	       rounds, percentile_us(rtt, (size_t)rounds, 500), percentile_us(rtt, (size_t)rounds, 990),
	       (double)rtt[0] / 1000.0, sum / (double)rounds / 1000.0,
	       (double)rtt[rounds - 1] / 1000.0, percentile_us(rtt, (size_t)rounds, 900),
	       percentile_us(rtt, (size_t)rounds, 999));
	free(rtt);
	return 0;
}
