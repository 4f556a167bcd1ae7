/*
 * bench_util.h — small helpers shared by the benchmark programs: argument parsing, the
 * monotonic clock, whole-buffer read/write that retry EINTR, and fatal errors.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static inline void die(const char *prog, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* A decimal number in [min, max], or exit with a usage error. */
static inline long parse_num(const char *prog, const char *what, const char *s, long min, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "%s: bad %s '%s' (want %ld..%ld)\n", prog, what, s, min, max);
		exit(2);
	}
	return v;
}

static inline struct sockaddr_in parse_addr(const char *prog, const char *ip, long port)
{
	struct sockaddr_in addr;
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, ip, &addr.sin_addr) != 1) {
		fprintf(stderr, "%s: bad IPv4 address '%s'\n", prog, ip);
		exit(2);
	}
	return addr;
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Reads exactly len bytes: len on success, 0 on EOF before any byte, -1 on error or on EOF
 * part way (errno EPIPE then). */
static inline ssize_t read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			if (got == 0)
				return 0;
			errno = EPIPE;
			return -1;
		}
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Writes all of buf: 0 on success, -1 on error. */
static inline int write_full(int fd, const void *buf, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, (const char *)buf + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

static inline void set_nodelay(const char *prog, int fd)
{
	int one = 1;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		die(prog, "setsockopt(TCP_NODELAY): %s", strerror(errno));
}

/* A listening socket on addr (SO_REUSEADDR, so a new server can take the port while the last
 * one's connections sit in TIME-WAIT, as every real server does). */
static inline int listen_on(const char *prog, const struct sockaddr_in *addr)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die(prog, "socket: %s", strerror(errno));
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		die(prog, "setsockopt(SO_REUSEADDR): %s", strerror(errno));
	if (bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0)
		die(prog, "bind port %u: %s", ntohs(addr->sin_port), strerror(errno));
	if (listen(fd, SOMAXCONN) < 0)
		die(prog, "listen: %s", strerror(errno));
	return fd;
}

#endif
