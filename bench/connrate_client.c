/*
 * connrate_client.c — connection rate: connect, 1-byte request, 1-byte reply, close, in a
 * loop, one connection at a time, for SECONDS.
 *
 *   connrate_client IP FIRST_PORT NPORTS SECONDS
 *
 * Connection i goes to port FIRST_PORT + i % NPORTS. Each one: socket, connect, write 1
 * byte, read the 1-byte reply, read the server's FIN (EOF: the server closes first), close.
 * Nothing is tuned: no SO_LINGER, no SO_REUSEADDR, an ephemeral port from connect. Each
 * socket gets 5 s SO_RCVTIMEO/SO_SNDTIMEO so a lost connection counts as an error instead of
 * hanging the run. Prints one line
 *   conns=N errors=E seconds=S rate=R p50_us=X p99_us=X max_us=X
 * (rate = completed connections per second; the percentiles are of one whole connection's
 * time) and the first few errors on stderr. Exits 0 if at least one connection completed;
 * stops early, exit 1, after 20 errors in a row.
 */
#include "bench_util.h"

#include <signal.h>
#include <sys/time.h>

static const char *prog = "connrate_client";

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* One whole connection; NULL on success, else the step that failed (errno set). */
static const char *one_connection(const struct sockaddr_in *addr)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return "socket";
	const char *failed = NULL;
	struct timeval limit = { .tv_sec = 5, .tv_usec = 0 };
	char req = 'q', reply;
	ssize_t n;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit)) < 0)
		failed = "setsockopt";
	else if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0)
		failed = "connect";
	else if (write_full(fd, &req, 1) < 0)
		failed = "write";
	else if ((n = read_full(fd, &reply, 1)) != 1) {
		if (n == 0)
			errno = ECONNRESET;
		failed = "read reply";
	} else if (reply != req + 1) {
		errno = EPROTO;
		failed = "reply mismatch";
	} else if ((n = read_full(fd, &reply, 1)) != 0) {
		if (n > 0)
			errno = EPROTO;
		failed = "read EOF";
	}
	int saved = errno;
	close(fd);
	errno = saved;
	return failed;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s IP FIRST_PORT NPORTS SECONDS\n", prog);
		return 2;
	}
	long first = parse_num(prog, "port", argv[2], 1, 65535);
	long nports = parse_num(prog, "port count", argv[3], 1, 65536 - first);
	long seconds = parse_num(prog, "seconds", argv[4], 1, 3600);
	signal(SIGPIPE, SIG_IGN);

	size_t cap = 1 << 16, conns = 0;
	uint32_t *took_ns = malloc(cap * sizeof(*took_ns)); /* < 4.29 s each; clamped */
	if (took_ns == NULL)
		die(prog, "out of memory");
	unsigned long errors = 0, in_a_row = 0;
	uint64_t start = now_ns(), deadline = start + (uint64_t)seconds * 1000000000u, end;
	for (long i = 0;; i++) {
		uint64_t t0 = now_ns();
		if (t0 >= deadline) {
			end = t0;
			break;
		}
		struct sockaddr_in addr = parse_addr(prog, argv[1], first + i % nports);
		const char *failed = one_connection(&addr);
		uint64_t took = now_ns() - t0;
		if (failed != NULL) {
			if (errors < 5)
				fprintf(stderr, "%s: connection %ld to port %ld: %s: %s\n", prog, i,
					first + i % nports, failed, strerror(errno));
			errors++;
			if (++in_a_row >= 20) {
				fprintf(stderr, "%s: %lu errors in a row, giving up\n", prog, in_a_row);
				return 1;
			}
			continue;
		}
		in_a_row = 0;
		if (conns == cap) {
			cap *= 2;
			uint32_t *more = realloc(took_ns, cap * sizeof(*took_ns));
			if (more == NULL)
				die(prog, "out of memory");
			took_ns = more;
		}
		took_ns[conns++] = took > UINT32_MAX ? UINT32_MAX : (uint32_t)took;
	}
	if (conns == 0) {
		fprintf(stderr, "%s: no connection completed\n", prog);
		return 1;
	}
	double secs = (double)(end - start) / 1e9;
	qsort(took_ns, conns, sizeof(*took_ns), cmp_u32);
	printf("conns=%zu errors=%lu seconds=%.3f rate=%.0f p50_us=%.1f p99_us=%.1f max_us=%.1f\n",
	       conns, errors, secs, (double)conns / secs, took_ns[(conns * 50 + 99) / 100 - 1] / 1000.0,
	       took_ns[(conns * 99 + 99) / 100 - 1] / 1000.0, took_ns[conns - 1] / 1000.0);
	free(took_ns);
	return 0;
}
