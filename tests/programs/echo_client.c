/*
 * echo_client.c — load an echo server with concurrent connections and check every byte.
 *
 *   echo_client IP PORT [CONNS [BYTES [SEED]]]      defaults: 50 connections, 65536 bytes
 *
 * Opens all CONNS connections first and keeps them open together. Every connection sends
 * its first 1 KiB and the rest is held back until ALL connections have had that first KiB
 * echoed: a server that does not serve its connections concurrently (an iterative one) can
 * never get there and the client fails at the time limit. Then every connection sends the
 * rest of its BYTES pseudo-random bytes (seeded, different per connection), half-closes with
 * shutdown(SHUT_WR) and reads until EOF, comparing the echo byte for byte. Non-blocking
 * sockets, one poll() loop, 30 s overall limit. Prints one summary line; exit status 0 only
 * if every connection echoed everything and then saw EOF.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
	int fd;
	unsigned char *data;
	size_t sent, got;
	int shut, eof, bad;
};

static uint64_t rng_state;

static uint8_t rng_byte(void)
{
	/* xorshift64*: deterministic per seed */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint8_t)((rng_state * 2685821657736338717ULL) >> 56);
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s IP PORT [CONNS [BYTES [SEED]]]\n", argv[0]);
		return 2;
	}
	int nconn = argc > 3 ? atoi(argv[3]) : 50;
	size_t bytes = argc > 4 ? (size_t)atol(argv[4]) : 65536;
	rng_state = argc > 5 ? (uint64_t)atoll(argv[5]) : 1;
	if (rng_state == 0)
		rng_state = 1;
	struct sockaddr_in addr;
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)atoi(argv[2]));
	if (nconn <= 0 || inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
		fprintf(stderr, "echo_client: bad arguments\n");
		return 2;
	}

	struct conn *cs = calloc((size_t)nconn, sizeof(*cs));
	struct pollfd *pfd = calloc((size_t)nconn, sizeof(*pfd));
	unsigned char *rbuf = malloc(65536);
	if (!cs || !pfd || !rbuf)
		return 1;

	/* connect everything first (blocking), then go non-blocking */
	for (int i = 0; i < nconn; i++) {
		cs[i].fd = socket(AF_INET, SOCK_STREAM, 0);
		if (cs[i].fd < 0 || connect(cs[i].fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
			fprintf(stderr, "echo_client: connect #%d: %s\n", i, strerror(errno));
			return 1;
		}
		fcntl(cs[i].fd, F_SETFL, fcntl(cs[i].fd, F_GETFL) | O_NONBLOCK);
		cs[i].data = malloc(bytes ? bytes : 1);
		if (!cs[i].data)
			return 1;
		for (size_t k = 0; k < bytes; k++)
			cs[i].data[k] = rng_byte();
	}

	long deadline = now_ms() + 30000;
	int done = 0;
	size_t first = bytes < 1024 ? bytes : 1024;
	int all_started = 0; /* every connection has had its first KiB echoed */
	while (done < nconn && now_ms() < deadline) {
		if (!all_started) {
			all_started = 1;
			for (int i = 0; i < nconn; i++)
				if (cs[i].got < first && !cs[i].bad)
					all_started = 0;
		}
		size_t limit = all_started ? bytes : first;
		for (int i = 0; i < nconn; i++) {
			struct conn *c = &cs[i];
			pfd[i].fd = (c->eof || c->bad) ? -1 : c->fd;
			pfd[i].events = POLLIN | (c->sent < limit ? POLLOUT : 0);
			pfd[i].revents = 0;
		}
		if (poll(pfd, (nfds_t)nconn, 200) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < nconn; i++) {
			struct conn *c = &cs[i];
			if (pfd[i].fd < 0)
				continue;
			if ((pfd[i].revents & POLLOUT) && c->sent < limit) {
				ssize_t w = send(c->fd, c->data + c->sent, limit - c->sent, MSG_NOSIGNAL);
				if (w > 0)
					c->sent += (size_t)w;
				else if (w < 0 && errno != EAGAIN)
					c->bad = 1;
			}
			if (all_started && c->sent == bytes && !c->shut) {
				shutdown(c->fd, SHUT_WR);
				c->shut = 1;
			}
			if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
				ssize_t r = recv(c->fd, rbuf, 65536, 0);
				if (r > 0) {
					if (c->got + (size_t)r > bytes ||
					    memcmp(rbuf, c->data + c->got, (size_t)r) != 0)
						c->bad = 1;
					c->got += (size_t)r;
				} else if (r == 0) {
					c->eof = 1;
					if (c->got != bytes)
						c->bad = 1;
				} else if (errno != EAGAIN) {
					c->bad = 1;
				}
			}
			if (c->eof || c->bad)
				done++;
		}
	}

	int ok = 0;
	size_t total = 0;
	for (int i = 0; i < nconn; i++) {
		if (cs[i].eof && !cs[i].bad && cs[i].got == bytes)
			ok++;
		total += cs[i].got;
		close(cs[i].fd);
	}
	printf("echo_client: %d/%d connections ok, %zu bytes echoed\n", ok, nconn, total);
	return ok == nconn ? 0 : 1;
}
