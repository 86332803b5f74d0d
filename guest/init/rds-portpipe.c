/*
 * rds-portpipe: reads the agent's virtio-serial control port for one host session and hands
 * what arrives to the agent in large writes.
 *
 *   rds-portpipe          (fd 3: the open port, fd 1: a socket to the agent)
 *
 * Why: the stock guest kernel gives the port one page-sized receive buffer, and a read() returns
 * at most one buffer, so a process reading the port itself makes a syscall, and the agent's
 * interpreted JavaScript a callback, for every 4 KiB the host sends. This reader makes those
 * syscalls in C and gathers up to 256 KiB per write. The agent keeps writing to the port itself
 * (the guest kernel takes 32 KiB per write, and another hop would only slow the way out).
 * It parses nothing: bytes in, bytes out.
 *
 * While no host is connected a read returns 0 at once; the reader waits for the first bytes,
 * then relays until the host leaves (a read returns 0 again) or the agent closes its socket,
 * and exits. The agent starts one per session and closes the port after it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define PORT_FD 3
#define AGENT_FD 1
/* Gathered from the port before one write to the agent. */
#define GATHER_BYTES (256 * 1024)
/*
 * A VM restored from a snapshot taken while no host was connected can be handed the new host's
 * first bytes before the guest kernel learns the host is there: until then reads return 0 as if
 * the host had left, and the agent's first answers cannot be written. An EOF this early in a
 * session is only believed once it has lasted HOST_GONE_MS.
 */
#define EARLY_SESSION_MS 1000
#define HOST_GONE_MS 200

static char buf[GATHER_BYTES];

static long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

static void pause_ms(long ms)
{
	struct timespec t = { .tv_sec = 0, .tv_nsec = ms * 1000000L };
	nanosleep(&t, NULL);
}

/* Writes all of buf, waiting when the agent's socket is full; -1 when the agent is gone. */
static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR) continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd w = { .fd = fd, .events = POLLOUT };
			if (poll(&w, 1, -1) < 0 && errno != EINTR) return -1;
			if (w.revents & (POLLERR | POLLNVAL)) return -1;
			continue;
		}
		return -1;
	}
	return 0;
}

/* Reads what the port holds now, up to the buffer: >0 bytes, 0 at EOF (no host), -1 nothing yet,
 * -2 on a read error. */
static ssize_t drain_port(void)
{
	size_t got = 0;
	while (got < sizeof(buf)) {
		ssize_t n = read(PORT_FD, buf + got, sizeof(buf) - got);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0) return got > 0 ? (ssize_t)got : 0;
		if (errno == EINTR) continue;
		if (errno != EAGAIN) return got > 0 ? (ssize_t)got : -2;
		break; /* all there is for now */
	}
	return got > 0 ? (ssize_t)got : -1;
}

int main(void)
{
	/* Never outlive the agent: a reader left behind would hold the port open. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1) return 1;
	signal(SIGPIPE, SIG_IGN);
	/* Draining the port stops at EAGAIN. */
	int fl = fcntl(PORT_FD, F_GETFL);
	if (fl < 0 || fcntl(PORT_FD, F_SETFL, fl | O_NONBLOCK) < 0) return 1;

	/*
	 * Until the host's first bytes, reads return 0 because no host is connected yet: wait for one.
	 * From them on this is a session, relayed until the host leaves or the agent ends it.
	 */
	long backoff = 1, started = -1, eof_since = -1;
	for (;;) {
		struct pollfd p[2] = { { .fd = PORT_FD, .events = POLLIN }, { .fd = AGENT_FD, .events = 0 } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR) continue;
			return 1;
		}
		if (p[1].revents & (POLLHUP | POLLERR | POLLNVAL)) return 0;
		if (!p[0].revents) continue;
		ssize_t n = drain_port();
		if (n == -2) return 1;
		if (n == 0 && started < 0) {
			pause_ms(backoff);
			backoff = backoff < 10 ? backoff * 2 : 10;
			continue;
		}
		if (n == 0) {
			long now = now_ms();
			if (eof_since < 0) eof_since = now;
			if (eof_since - started >= EARLY_SESSION_MS || now - eof_since >= HOST_GONE_MS) return 0; /* the host left */
			/* The port polls as hung up while it looks host-less: check again shortly. */
			pause_ms(1);
			continue;
		}
		if (n < 0) continue;
		if (started < 0) started = now_ms();
		eof_since = -1;
		if (write_all(AGENT_FD, buf, (size_t)n) < 0) return 0;
	}
}
