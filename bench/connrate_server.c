/*
 * connrate_server.c — the server side of the connection-rate benchmark.
 *
 *   connrate_server IP FIRST_PORT NPORTS
 *
 * Listens on NPORTS consecutive ports (FIRST_PORT, FIRST_PORT+1, ...), prints
 * "connrate_server: listening IP FIRST_PORT NPORTS" (flushed), then for every connection, one
 * at a time: read the 1-byte request, write a 1-byte reply, close. The server closes first,
 * as an HTTP/1.0 server does, so TIME-WAIT stays on the server (where it costs a table entry,
 * not a port) and the client's port is free again as soon as its own FIN is acknowledged.
 * Several ports multiply the 4-tuples the client's ports can be reused with.
 * On SIGTERM/SIGINT prints "served=N errors=E" and exits 0.
 */
#include "bench_util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/time.h>

static const char *prog = "connrate_server";
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* One request/reply exchange on a fresh connection; 0 on success. */
static int serve(int c)
{
	struct timeval limit = { .tv_sec = 5, .tv_usec = 0 };
	if (setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit)) < 0 ||
	    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit)) < 0)
		return -1;
	char req;
	if (read_full(c, &req, 1) != 1)
		return -1;
	char reply = (char)(req + 1);
	return write_full(c, &reply, 1);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s IP FIRST_PORT NPORTS\n", prog);
		return 2;
	}
	long first = parse_num(prog, "port", argv[2], 1, 65535);
	long nports = parse_num(prog, "port count", argv[3], 1, 65536 - first);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR and we stop */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct pollfd *pfd = calloc((size_t)nports, sizeof(*pfd));
	if (pfd == NULL)
		die(prog, "out of memory");
	for (long i = 0; i < nports; i++) {
		struct sockaddr_in addr = parse_addr(prog, argv[1], first + i);
		pfd[i].fd = listen_on(prog, &addr);
		pfd[i].events = POLLIN;
		/* poll() said readable, but the connection may be gone by accept(): never block. */
		if (fcntl(pfd[i].fd, F_SETFL, O_NONBLOCK) < 0)
			die(prog, "fcntl(O_NONBLOCK): %s", strerror(errno));
	}
	printf("%s: listening %s %ld %ld\n", prog, argv[1], first, nports);
	fflush(stdout);

	unsigned long served = 0, errors = 0;
	while (!stop) {
		int ready = poll(pfd, (nfds_t)nports, -1);
		if (ready < 0) {
			if (errno == EINTR)
				continue;
			die(prog, "poll: %s", strerror(errno));
		}
		for (long i = 0; i < nports && !stop; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			int c = accept(pfd[i].fd, NULL, NULL);
			if (c < 0) {
				if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
					die(prog, "accept: %s", strerror(errno));
				continue;
			}
			if (serve(c) == 0)
				served++;
			else
				errors++;
			close(c);
		}
	}
	printf("served=%lu errors=%lu\n", served, errors);
	return 0;
}
