/*
 * Differential socket-API conformance suite.
 *
 * Build:  gcc -O1 -Wall -Wextra -Werror -o conformance conformance.c
 *         (or `make -C tests/conformance OUT=/some/dir`)
 * Run:    ./conformance            all cases, one line each on stdout
 *         ./conformance --list     case names only
 *         ./conformance WORD...    only the cases whose name contains a WORD
 *
 * Every case prints exactly one line `case-name: result`. The result holds only normalised
 * facts (errno names, "port nonzero", "peer 127.0.0.1", poll bit names), never port numbers,
 * fds, pids or timings, so the output is byte-identical from run to run. The suite is meant to
 * be run twice, once on the Linux kernel and once under the shim (LD_PRELOAD=libsockshim.so),
 * and the two outputs diffed: every difference is a conformance bug (or, rarely, a kernel
 * version difference; the reference kernel is noted in tests/conformance/README.md).
 *
 * Intended mode: root inside a private network namespace (that is what CI does; see
 * run_in_netns.sh). The output is the same when run as an unprivileged user: the one case
 * about privilege (ports < 1024) forks and drops to uid 65534 itself.
 *
 * Rules each case follows:
 *  - self-contained: server and client sockets live in this process over 127.0.0.1 (or
 *    ::ffff:127.0.0.1); only the fork-* and privilege cases fork;
 *  - never assume that something which happens asynchronously has already happened: wait
 *    for it with poll (bounded), then report the state. On the kernel, loopback delivery is
 *    synchronous; under the shim it goes through a daemon, and a correct shim must reach
 *    the same final state;
 *  - nothing hangs: alarm() per case (a hung case prints `case: TIMEOUT` and the suite goes
 *    on), every wait has a poll timeout, SIGSEGV in a case prints `case: CRASH SIGSEGV`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CASE_TIMEOUT_S 10 /* alarm per case */
#define WAIT_MS 3000      /* upper bound for anything that must happen */
#define QUIET_MS 200      /* how long we watch for something that must NOT happen */
#define ASK (POLLIN | POLLOUT | POLLRDHUP)

/* ------------------------------------------------------------------------------------------ */
/* Harness state                                                                               */

static sigjmp_buf case_jmp;
static volatile sig_atomic_t sigpipe_count;
static char line[4096];
static size_t line_len;
static char setup_msg[256];

static int tracked_fds[64];
static int n_tracked_fds;
static pid_t tracked_kids[8];
static int n_tracked_kids;

static void on_sigpipe(int sig)
{
	(void)sig;
	sigpipe_count++;
}

static void on_alarm(int sig)
{
	(void)sig;
	siglongjmp(case_jmp, 1);
}

static void on_crash(int sig)
{
	siglongjmp(case_jmp, sig == SIGSEGV ? 2 : 4);
}

/* Append to the result line. `part` separates facts with ", ". */
static void out(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line + line_len, sizeof(line) - line_len, fmt, ap);
	va_end(ap);
	if (n > 0)
		line_len += (size_t)n < sizeof(line) - line_len ? (size_t)n : sizeof(line) - line_len - 1;
}

static void part(const char *fmt, ...)
{
	if (line_len > 0)
		out(", ");
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line + line_len, sizeof(line) - line_len, fmt, ap);
	va_end(ap);
	if (n > 0)
		line_len += (size_t)n < sizeof(line) - line_len ? (size_t)n : sizeof(line) - line_len - 1;
}

static int T(int fd)
{
	if (fd >= 0 && n_tracked_fds < (int)(sizeof(tracked_fds) / sizeof(tracked_fds[0])))
		tracked_fds[n_tracked_fds++] = fd;
	return fd;
}

static void untrack(int fd)
{
	for (int i = 0; i < n_tracked_fds; i++) {
		if (tracked_fds[i] == fd) {
			tracked_fds[i] = tracked_fds[--n_tracked_fds];
			return;
		}
	}
}

/* Close an fd the case owns (the harness closes whatever is left when the case ends). */
static int xclose(int fd)
{
	untrack(fd);
	return close(fd);
}

static void untrack_kid(pid_t p)
{
	for (int i = 0; i < n_tracked_kids; i++) {
		if (tracked_kids[i] == p) {
			tracked_kids[i] = tracked_kids[--n_tracked_kids];
			return;
		}
	}
}

static void setup_fail(const char *what, int e);

static const char *errname(int e)
{
	switch (e) {
#define E(x)     \
	case x:  \
		return #x;
		E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(EBADF) E(ECHILD)
		E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST) E(ENODEV) E(ENOTDIR)
		E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY) E(ENOSPC) E(ESPIPE) E(EPIPE)
		E(ERANGE) E(ENOSYS) E(ENOTSOCK) E(EDESTADDRREQ) E(EMSGSIZE) E(EPROTOTYPE)
		E(ENOPROTOOPT) E(EPROTONOSUPPORT) E(ESOCKTNOSUPPORT) E(EOPNOTSUPP) E(EPFNOSUPPORT)
		E(EAFNOSUPPORT) E(EADDRINUSE) E(EADDRNOTAVAIL) E(ENETDOWN) E(ENETUNREACH)
		E(ENETRESET) E(ECONNABORTED) E(ECONNRESET) E(ENOBUFS) E(EISCONN) E(ENOTCONN)
		E(ESHUTDOWN) E(ETIMEDOUT) E(ECONNREFUSED) E(EHOSTDOWN) E(EHOSTUNREACH) E(EALREADY)
		E(EINPROGRESS)
#undef E
	}
	static char buf[32];
	snprintf(buf, sizeof(buf), "errno%d", e);
	return buf;
}

/* Rotating buffers so several results can appear in one printf. */
static char *rbuf(void)
{
	static char bufs[32][128];
	static unsigned next;
	return bufs[next++ % 32];
}

static const char *fmt_res(long r, int e)
{
	char *b = rbuf();
	if (r < 0)
		snprintf(b, 128, "-1 %s", errname(e));
	else
		snprintf(b, 128, "%ld", r);
	return b;
}

/* RES(call): "n" or "-1 ENAME", errno read right after the call. */
#define RES(call)                        \
	({                               \
		errno = 0;               \
		long r_ = (long)(call);  \
		int e_ = errno;          \
		fmt_res(r_, e_);         \
	})

/* FDRES(call): "fd" for a new descriptor (tracked, so it gets closed) or "-1 ENAME". */
#define FDRES(call)                                          \
	({                                                   \
		errno = 0;                                   \
		long r_ = (long)(call);                      \
		int e_ = errno;                              \
		r_ >= 0 ? (T((int)r_), "fd") : fmt_res(r_, e_); \
	})

/* CHECK: a setup step that must succeed for the case to mean anything. */
#define CHECK(cond, what)                          \
	do {                                       \
		if (!(cond))                       \
			setup_fail((what), errno); \
	} while (0)

static void setup_fail(const char *what, int e)
{
	snprintf(setup_msg, sizeof(setup_msg), "SETUP FAILED: %s: %s", what, errname(e));
	siglongjmp(case_jmp, 3);
}

/* ------------------------------------------------------------------------------------------ */
/* Time, addresses, formatting                                                                 */

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
}

static struct sockaddr_in sin4(const char *ip, uint16_t port)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	inet_pton(AF_INET, ip, &a.sin_addr);
	return a;
}

static struct sockaddr_in6 sin6(const char *ip, uint16_t port)
{
	struct sockaddr_in6 a;
	memset(&a, 0, sizeof(a));
	a.sin6_family = AF_INET6;
	a.sin6_port = htons(port);
	inet_pton(AF_INET6, ip, &a.sin6_addr);
	return a;
}

#define SA(x) ((struct sockaddr *)(x))

static uint16_t sa_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return 0;
}

static uint16_t local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	memset(&ss, 0, sizeof(ss));
	CHECK(getsockname(fd, SA(&ss), &len) == 0, "getsockname");
	return sa_port(&ss);
}

static const char *family_name(int f)
{
	switch (f) {
	case AF_INET:
		return "AF_INET";
	case AF_INET6:
		return "AF_INET6";
	case AF_UNSPEC:
		return "AF_UNSPEC";
	}
	char *b = rbuf();
	snprintf(b, 128, "family%d", f);
	return b;
}

/*
 * "127.0.0.1 port =listener" — the address, then the port relative to a reference port the
 * case knows (ref 0: just "port nonzero" / "port 0").
 */
static const char *addr_desc(const struct sockaddr_storage *ss, uint16_t ref, const char *refname)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	char *b = rbuf();
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, ip, sizeof(ip));
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, ip, sizeof(ip));
	else {
		snprintf(b, 128, "%s", family_name(ss->ss_family));
		return b;
	}
	uint16_t p = sa_port(ss);
	const char *prel;
	if (p == 0)
		prel = "port 0";
	else if (ref != 0 && p == ref)
		prel = refname;
	else
		prel = "port nonzero";
	snprintf(b, 128, "%s %s", ip, prel);
	return b;
}

/* getsockname / getpeername described, or the error. */
static const char *sockname_desc(int fd, int peer, uint16_t ref, const char *refname)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	memset(&ss, 0, sizeof(ss));
	errno = 0;
	int r = peer ? getpeername(fd, SA(&ss), &len) : getsockname(fd, SA(&ss), &len);
	if (r < 0)
		return fmt_res(r, errno);
	return addr_desc(&ss, ref, refname);
}

static const char *ev_str(int re)
{
	static const struct {
		int bit;
		const char *name;
	} bits[] = {{POLLIN, "POLLIN"},   {POLLPRI, "POLLPRI"},   {POLLOUT, "POLLOUT"},
		    {POLLERR, "POLLERR"}, {POLLHUP, "POLLHUP"},   {POLLNVAL, "POLLNVAL"},
		    {POLLRDHUP, "POLLRDHUP"}};
	char *b = rbuf();
	b[0] = 0;
	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
		if (re & bits[i].bit) {
			if (b[0])
				strcat(b, "|");
			strcat(b, bits[i].name);
		}
	}
	if (!b[0])
		strcpy(b, "0");
	return b;
}

static const char *epev_str(uint32_t re)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} bits[] = {{EPOLLIN, "EPOLLIN"},   {EPOLLPRI, "EPOLLPRI"}, {EPOLLOUT, "EPOLLOUT"},
		    {EPOLLERR, "EPOLLERR"}, {EPOLLHUP, "EPOLLHUP"}, {EPOLLRDHUP, "EPOLLRDHUP"}};
	char *b = rbuf();
	b[0] = 0;
	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
		if (re & bits[i].bit) {
			if (b[0])
				strcat(b, "|");
			strcat(b, bits[i].name);
		}
	}
	if (!b[0])
		strcpy(b, "0");
	return b;
}

static const char *tcp_state_name(int st)
{
	static const char *names[] = {"?",         "ESTABLISHED", "SYN_SENT", "SYN_RECV",
				      "FIN_WAIT1", "FIN_WAIT2",   "TIME_WAIT", "CLOSE",
				      "CLOSE_WAIT", "LAST_ACK",   "LISTEN",    "CLOSING"};
	if (st >= 0 && st < (int)(sizeof(names) / sizeof(names[0])))
		return names[st];
	return "?";
}

/* 'text' with non-printables shown as '.', for data read back. */
static const char *quoted(const char *buf, long n)
{
	char *b = rbuf();
	if (n < 0)
		return fmt_res(n, errno);
	if (n > 100)
		n = 100;
	b[0] = '\'';
	for (long i = 0; i < n; i++)
		b[i + 1] = (buf[i] >= 32 && buf[i] < 127) ? buf[i] : '.';
	b[n + 1] = '\'';
	b[n + 2] = 0;
	return b;
}

/* ------------------------------------------------------------------------------------------ */
/* Socket building blocks                                                                      */

static int tcp4(void)
{
	int fd = T(socket(AF_INET, SOCK_STREAM, 0));
	CHECK(fd >= 0, "socket");
	return fd;
}

static int udp4(void)
{
	int fd = T(socket(AF_INET, SOCK_DGRAM, 0));
	CHECK(fd >= 0, "socket");
	return fd;
}

static int tcp6(void)
{
	int fd = T(socket(AF_INET6, SOCK_STREAM, 0));
	CHECK(fd >= 0, "socket6");
	return fd;
}

static void set_int(int fd, int level, int opt, int v)
{
	CHECK(setsockopt(fd, level, opt, &v, sizeof(v)) == 0, "setsockopt");
}

static int get_int(int fd, int level, int opt)
{
	int v = -12345;
	socklen_t len = sizeof(v);
	CHECK(getsockopt(fd, level, opt, &v, &len) == 0, "getsockopt");
	return v;
}

static void set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);
	CHECK(fl >= 0, "F_GETFL");
	CHECK(fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK)) == 0, "F_SETFL");
}

static const char *nonblock_desc(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return fmt_res(fl, errno);
	return (fl & O_NONBLOCK) ? "O_NONBLOCK set" : "O_NONBLOCK clear";
}

static const char *cloexec_desc(int fd)
{
	int fl = fcntl(fd, F_GETFD);
	if (fl < 0)
		return fmt_res(fl, errno);
	return (fl & FD_CLOEXEC) ? "FD_CLOEXEC set" : "FD_CLOEXEC clear";
}

static void bind4(int fd, const char *ip, uint16_t port)
{
	struct sockaddr_in a = sin4(ip, port);
	CHECK(bind(fd, SA(&a), sizeof(a)) == 0, "bind");
}

/* TCP listener on 127.0.0.1:<ephemeral>. */
static int listener4(uint16_t *port)
{
	int l = tcp4();
	bind4(l, "127.0.0.1", 0);
	CHECK(listen(l, 16) == 0, "listen");
	*port = local_port(l);
	return l;
}

/* Wait until (revents & want) == want or the deadline; returns the last revents. */
static int wait_ev(int fd, int ask, int want, int ms)
{
	long deadline = now_ms() + ms;
	for (;;) {
		struct pollfd p = {fd, (short)ask, 0};
		long left = deadline - now_ms();
		if (left < 0)
			left = 0;
		int r = poll(&p, 1, (int)(left > 20 ? 20 : left));
		if (r < 0 && errno != EINTR)
			return -1;
		if ((p.revents & want) == want)
			return p.revents;
		if (left == 0)
			return p.revents;
		if (r > 0)
			sleep_ms(2); /* something else is ready (e.g. POLLOUT): do not spin */
	}
}

/* poll once for QUIET_MS: used where nothing is supposed to happen. */
static int quiet_ev(int fd, int ask)
{
	struct pollfd p = {fd, (short)ask, 0};
	int r = poll(&p, 1, QUIET_MS);
	return r < 0 ? -1 : p.revents;
}

static int poll_now(int fd)
{
	struct pollfd p = {fd, ASK, 0};
	int r = poll(&p, 1, 0);
	return r < 0 ? -1 : p.revents;
}

static int accept_wait(int l)
{
	CHECK(wait_ev(l, POLLIN, POLLIN, WAIT_MS) & POLLIN, "accept wait");
	int s = T(accept(l, NULL, NULL));
	CHECK(s >= 0, "accept");
	return s;
}

static int connect4(uint16_t port)
{
	int c = tcp4();
	struct sockaddr_in a = sin4("127.0.0.1", port);
	CHECK(connect(c, SA(&a), sizeof(a)) == 0, "connect");
	return c;
}

/* A connected pair over 127.0.0.1: c is the client end, s the accepted end. */
static void tcp_pair(int *c, int *s)
{
	uint16_t port;
	int l = listener4(&port);
	*c = connect4(port);
	*s = accept_wait(l);
	xclose(l);
}

/* A TCP socket bound to 127.0.0.1:<p> but not listening: connecting to p is refused, and the
 * port stays reserved for the whole case. */
static int closed_tcp_port(uint16_t *port)
{
	int fd = tcp4();
	bind4(fd, "127.0.0.1", 0);
	*port = local_port(fd);
	return fd;
}

/* A UDP port with nobody bound to it (bound once to learn a free port, then closed). */
static uint16_t closed_udp_port(void)
{
	int fd = udp4();
	bind4(fd, "127.0.0.1", 0);
	uint16_t p = local_port(fd);
	xclose(fd);
	return p;
}

static void send_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			CHECK(wait_ev(fd, POLLOUT, POLLOUT, WAIT_MS) & POLLOUT, "send wait");
			continue;
		}
		CHECK(w > 0, "send");
		p += w;
		n -= (size_t)w;
	}
}

/* Read until n bytes, EOF, error or WAIT_MS; returns the count (or -1 with errno if the
 * first read failed). */
static long recv_n(int fd, char *buf, size_t n)
{
	size_t got = 0;
	long deadline = now_ms() + WAIT_MS;
	while (got < n) {
		long left = deadline - now_ms();
		if (left <= 0)
			break;
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		ssize_t r = recv(fd, buf + got, n - got, MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r < 0)
			return got ? (long)got : -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (long)got;
}

/* Wait until FIONREAD reports at least n bytes (so a single read sees all of them). */
static int wait_inq(int fd, int n)
{
	long deadline = now_ms() + WAIT_MS;
	int v = -1;
	while (now_ms() < deadline) {
		if (ioctl(fd, FIONREAD, &v) == 0 && v >= n)
			return v;
		sleep_ms(2);
	}
	return v;
}

static int tcp_state(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return -1;
	return ti.tcpi_state;
}

static const char *wait_state(int fd, int want)
{
	long deadline = now_ms() + WAIT_MS;
	int st = tcp_state(fd);
	while (st != want && now_ms() < deadline) {
		sleep_ms(2);
		st = tcp_state(fd);
	}
	return st < 0 ? fmt_res(-1, errno) : tcp_state_name(st);
}

/* Fill the send path of c (peer s not reading) until the kernel refuses more and stays so.
 * Returns 1 if the final state is "EAGAIN and not POLLOUT". */
static int fill_send_buffer(int c)
{
	static char chunk[65536];
	memset(chunk, 'x', sizeof(chunk));
	for (int round = 0; round < 200; round++) {
		while (send(c, chunk, sizeof(chunk), MSG_DONTWAIT | MSG_NOSIGNAL) > 0) {
		}
		if (errno != EAGAIN)
			return 0;
		/* In-flight data may still be acknowledged and free space: keep going until a
		 * QUIET_MS window passes without the socket becoming writable again. */
		if (quiet_ev(c, POLLOUT) == 0)
			return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* fork helpers                                                                                */

static pid_t fork_kid(void)
{
	fflush(stdout);
	pid_t p = fork();
	CHECK(p >= 0, "fork");
	if (p == 0) {
		/* The child never returns into the harness: default SIGALRM kills it if it hangs. */
		signal(SIGALRM, SIG_DFL);
		alarm(CASE_TIMEOUT_S);
		n_tracked_fds = 0;
		n_tracked_kids = 0;
	} else if (n_tracked_kids < (int)(sizeof(tracked_kids) / sizeof(tracked_kids[0]))) {
		tracked_kids[n_tracked_kids++] = p;
	}
	return p;
}

/* Child exit status carrying a result: 0 = success, 100+errno = failure. */
static void kid_exit_res(long r, int e)
{
	_exit(r >= 0 ? 0 : 100 + (e & 0x7f));
}

static const char *wait_kid(pid_t p)
{
	int st = 0;
	pid_t r;
	while ((r = waitpid(p, &st, 0)) < 0 && errno == EINTR) {
	}
	untrack_kid(p);
	char *b = rbuf();
	if (r < 0)
		snprintf(b, 128, "waitpid %s", errname(errno));
	else if (WIFSIGNALED(st))
		snprintf(b, 128, "child killed by signal %d", WTERMSIG(st));
	else if (WEXITSTATUS(st) == 0)
		snprintf(b, 128, "0");
	else if (WEXITSTATUS(st) >= 100)
		snprintf(b, 128, "-1 %s", errname(WEXITSTATUS(st) - 100));
	else
		snprintf(b, 128, "child exit %d", WEXITSTATUS(st));
	return b;
}

/* Drop to nobody (uid/gid 65534) if we are root; exit 99 if that fails. */
static void drop_privileges(void)
{
	if (geteuid() != 0)
		return;
	if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
		_exit(99);
}
