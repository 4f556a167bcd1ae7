/*
 * pingpong_server.c — the echo side of the request/response latency benchmark.
 *
 *   pingpong_server IP PORT
 *
 * Listens, prints "pingpong_server: listening IP PORT" (flushed), then serves connections
 * one after the other: TCP_NODELAY on, every byte read is written straight back, until EOF.
 * Runs until killed. The client sends one byte and waits for it, so each read here returns
 * that one byte and each write answers it at once (no batching on either side).
 */
#include "bench_util.h"

static const char *prog = "pingpong_server";

/* Echoes until EOF; 0 on a clean EOF. */
static int echo(int fd)
{
	char buf[64];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		if (write_full(fd, buf, (size_t)n) < 0)
			return -1;
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s IP PORT\n", prog);
		return 2;
	}
	struct sockaddr_in addr = parse_addr(prog, argv[1], parse_num(prog, "port", argv[2], 1, 65535));
	int l = listen_on(prog, &addr);
	printf("%s: listening %s %s\n", prog, argv[1], argv[2]);
	fflush(stdout);
	for (;;) {
		int c = accept(l, NULL, NULL);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			die(prog, "accept: %s", strerror(errno));
		}
		set_nodelay(prog, c);
		if (echo(c) < 0)
			fprintf(stderr, "%s: connection ended with error: %s\n", prog, strerror(errno));
		close(c);
	}
}
