/*
 * fork_server.c — a classic fork-per-connection TCP echo server.
 *
 *   fork_server IP PORT        (PORT 0: pick an ephemeral port)
 *
 * Prints "fork_server: listening IP PORT" (flushed) once it listens, then for every
 * connection: accept -> fork -> the child closes the listener, echoes until EOF, closes and
 * exits; the parent closes its copy of the connection at once and goes back to accept().
 * So each connection lives on in the child alone: the parent's close() must not end it.
 * Children are reaped from a SIGCHLD handler (accept() may then fail with EINTR: retried).
 * Runs until SIGTERM/SIGINT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void reap(int sig)
{
	(void)sig;
	int saved = errno;
	while (waitpid(-1, NULL, WNOHANG) > 0) {
	}
	errno = saved;
}

/* Echo until EOF; returns 0 on a clean EOF. */
static int echo(int fd)
{
	char buf[16384];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return 1;
		if (n == 0)
			return 0;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return 1;
			off += w;
		}
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s IP PORT\n", argv[0]);
		return 2;
	}
	struct sockaddr_in addr;
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
		fprintf(stderr, "fork_server: bad address %s\n", argv[1]);
		return 2;
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = reap;
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int l = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(l, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(l, 128) < 0) {
		perror("fork_server: socket/bind/listen");
		return 1;
	}
	socklen_t len = sizeof(addr);
	if (getsockname(l, (struct sockaddr *)&addr, &len) < 0) {
		perror("fork_server: getsockname");
		return 1;
	}
	printf("fork_server: listening %s %u\n", argv[1], ntohs(addr.sin_port));
	fflush(stdout);

	for (;;) {
		int c = accept(l, NULL, NULL);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("fork_server: accept");
			return 1;
		}
		pid_t p = fork();
		if (p < 0) {
			perror("fork_server: fork");
			close(c);
			continue;
		}
		if (p == 0) {
			close(l);
			int rc = echo(c);
			close(c);
			_exit(rc);
		}
		close(c);
	}
}
