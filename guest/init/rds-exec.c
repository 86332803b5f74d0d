/*
 * rds-exec: how the (root) guest agent starts untrusted code.
 *
 *   rds-exec [--cgroup DIR] [--uid N] [--gid N] [--cwd DIR] [--umask 022] [--pty COLSxROWS] [--no-aslr] -- prog args...
 *   rds-exec --host-init UNIX_MS    (clock := UNIX_MS unless 0; stdin, up to 4096 bytes -> kernel RNG)
 *
 * With --pty the program gets a terminal (see pty_relay below); rds-exec stays as its relay,
 * already dropped to the user, so the agent never holds a terminal or runs an ioctl for it.
 *
 * Privileges are dropped here, in a tiny static binary, rather than through Node's
 * spawn options so the order (cgroup first, ids last-but-verified, no_new_privs) is
 * explicit and every failure is fatal with a clear message and exit status 127.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* From <linux/random.h>, which musl-gcc cannot see. */
#define RNDADDENTROPY 0x40085203 /* _IOW('R', 0x03, int[2]) */
#define RNDRESEEDCRNG 0x5207     /* _IO('R', 0x07) */

static void die(const char *step)
{
	fprintf(stderr, "rds-exec: %s: %s\n", step, strerror(errno));
	exit(127);
}

static void usage(void)
{
	fprintf(stderr, "usage: rds-exec [--cgroup DIR] [--uid N] [--gid N] [--cwd DIR] [--umask OCT] [--keep-fds N] [--pty COLSxROWS] [--no-aslr] -- prog args...\n"
			"       rds-exec --host-init UNIX_MS < entropy-bytes\n");
	exit(127);
}

static int add_entropy(void);
static int pty_relay(struct winsize ws, char **argv);
static void parse_size(const char *s, struct winsize *ws);

static long parse_num(const char *s, int base, const char *what)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, base);
	if (errno || !*s || *end || v < 0) {
		errno = EINVAL;
		die(what);
	}
	return v;
}

/* After a snapshot restore every clone has the same RNG state and an old clock; the agent
 * hands the host's time and randomness to this one process (a process spawn is expensive in
 * a freshly restored guest). The entropy credit and the clock need CAP_SYS_ADMIN/SYS_TIME,
 * i.e. the agent. */
static int host_init(const char *unix_ms)
{
	long ms = parse_num(unix_ms, 10, "clock value");
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	if (ms > 0 && clock_settime(CLOCK_REALTIME, &ts) < 0)
		die("clock_settime");
	return add_entropy();
}

static int add_entropy(void)
{
	struct {
		int entropy_count;
		int buf_size;
		unsigned char buf[4096];
	} info;
	size_t n = 0;
	while (n < sizeof info.buf) {
		ssize_t r = read(0, info.buf + n, sizeof info.buf - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("read stdin");
		if (r == 0)
			break;
		n += r;
	}
	if (n == 0)
		return 0;
	int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		die("open /dev/urandom");
	info.entropy_count = (int)n * 8;
	info.buf_size = (int)n;
	if (ioctl(fd, RNDADDENTROPY, &info) < 0)
		die("RNDADDENTROPY");
	/* Older kernels lack the reseed ioctl; the added entropy still counts. */
	if (ioctl(fd, RNDRESEEDCRNG) < 0 && errno != ENOTTY && errno != EINVAL)
		die("RNDRESEEDCRNG");
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cgroup = NULL, *cwd = NULL;
	long uid = -1, gid = -1, mask = -1, keep_fds = 3;
	struct winsize ws = { 0 };
	int pty = 0, no_aslr = 0, i = 1;

	if (argc == 3 && strcmp(argv[1], "--host-init") == 0)
		return host_init(argv[2]);
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "--no-aslr") == 0) {
			no_aslr = 1;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		if (strcmp(a, "--cgroup") == 0)
			cgroup = argv[++i];
		else if (strcmp(a, "--uid") == 0)
			uid = parse_num(argv[++i], 10, "--uid");
		else if (strcmp(a, "--gid") == 0)
			gid = parse_num(argv[++i], 10, "--gid");
		else if (strcmp(a, "--cwd") == 0)
			cwd = argv[++i];
		else if (strcmp(a, "--umask") == 0)
			mask = parse_num(argv[++i], 8, "--umask");
		else if (strcmp(a, "--keep-fds") == 0)
			keep_fds = parse_num(argv[++i], 10, "--keep-fds");
		else if (strcmp(a, "--pty") == 0) {
			parse_size(argv[++i], &ws);
			pty = 1;
		} else
			usage();
	}
	if (i >= argc)
		usage();

	/* First, while still root: the process (and so everything it forks) is accounted
	 * in its cgroup before it can run any untrusted instruction. */
	if (cgroup) {
		char path[4096];
		if (snprintf(path, sizeof path, "%s/cgroup.procs", cgroup) >= (int)sizeof path) {
			errno = ENAMETOOLONG;
			die("cgroup");
		}
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) != 1)
			die("cgroup");
		close(fd);
	}
	/* Own session: no controlling tty of the agent, and the agent can kill the whole
	 * tree by process group. Already being a session leader (spawned detached) is fine. */
	if (setsid() < 0 && getsid(0) != getpid())
		die("setsid");
	/* The agent protects itself from the OOM killer (-1000) and children inherit that; user
	 * code must be the first to go, so reset it while still root (only root can lower it). */
	{
		int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (write(fd, "0", 1) != 1)
				die("oom_score_adj");
			close(fd);
		}
	}
	if (uid >= 0 || gid >= 0) {
		if (setgroups(0, NULL) < 0)
			die("setgroups");
	}
	if (gid >= 0 && setgid((gid_t)gid) < 0)
		die("setgid");
	if (uid >= 0 && setuid((uid_t)uid) < 0)
		die("setuid");
	if ((gid >= 0 && (getgid() != (gid_t)gid || getegid() != (gid_t)gid)) ||
	    (uid >= 0 && (getuid() != (uid_t)uid || geteuid() != (uid_t)uid))) {
		errno = EPERM;
		die("verify ids");
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die("no_new_privs");
	/* Under emulation QEMU keys translated code by virtual address: with the same layout in every
	 * process it reuses the translation of bash, libc or Deno from the last one instead of
	 * translating it again (several times faster process start). The flag only reaches the user's
	 * processes: it is inherited, and the kernel clears it on a set-id exec. */
	if (no_aslr) {
		int cur = personality(0xffffffff);
		if (cur < 0 || personality((unsigned long)cur | ADDR_NO_RANDOMIZE) < 0)
			die("personality");
	}
	if (cwd && chdir(cwd) < 0)
		die("chdir");
	if (mask >= 0)
		umask((mode_t)mask & 0777);
	/* Untrusted code gets stdio (and the run's result pipe when asked) and nothing else
	 * the agent or PID 1 may have left open without close-on-exec. */
	if (pty && keep_fds < 4)
		keep_fds = 4; /* fd 3 is the relay's control pipe */
	if (keep_fds >= 3 && syscall(SYS_close_range, (unsigned)keep_fds, ~0U, 0) < 0 && errno != ENOSYS)
		die("close_range");
	if (pty)
		return pty_relay(ws, argv + i);
	execvp(argv[i], argv + i);
	die("exec");
	return 127;
}

/* "COLSxROWS", each 1..1000. */
static void parse_size(const char *s, struct winsize *ws)
{
	char *end;
	errno = 0;
	long cols = strtol(s, &end, 10);
	long rows = *end == 'x' ? strtol(end + 1, &end, 10) : -1;
	if (errno || *end || cols < 1 || cols > 1000 || rows < 1 || rows > 1000) {
		errno = EINVAL;
		die("--pty COLSxROWS");
	}
	ws->ws_col = (unsigned short)cols;
	ws->ws_row = (unsigned short)rows;
}

static int write_all(int fd, const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One control line from the agent: "resize COLS ROWS" or "signal N". Anything else is ignored:
 * the agent is the only writer, and a bad line must not end the user's session. */
static void control(int master, pid_t child, const char *line)
{
	unsigned cols, rows;
	int sig;
	char tail;
	if (sscanf(line, "resize %u %u%c", &cols, &rows, &tail) == 2 && cols >= 1 && cols <= 1000 && rows >= 1 && rows <= 1000) {
		struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
		/* The kernel sends SIGWINCH to the terminal's foreground process group. */
		ioctl(master, TIOCSWINSZ, &ws);
	} else if (sscanf(line, "signal %d%c", &sig, &tail) == 1 && sig > 0 && sig < 65) {
		/* Like a key typed at the terminal: to whatever job is in the foreground. */
		pid_t fg = tcgetpgrp(master);
		kill(fg > 0 ? -fg : -child, sig);
	}
}

/*
 * The program runs as the leader of a new session whose controlling terminal is a fresh pty,
 * and this process (already the user, in the user's cgroup) relays:
 *   fd 0 (pipe from the agent) -> terminal input    terminal output -> fd 1 (pipe to the agent)
 *   fd 3: control lines from the agent (see control())
 * Writes to fd 1 block while the agent does not read, so a program that outputs faster than its
 * reader is slowed by its terminal, never buffered here. Exits with the program's status (128+n
 * for signal n) once it has exited and its output is drained.
 */
static int pty_relay(struct winsize ws, char **argv)
{
	int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		die("posix_openpt");
	if (grantpt(master) < 0 || unlockpt(master) < 0)
		die("unlockpt");
	char name[64];
	if (ptsname_r(master, name, sizeof name) != 0)
		die("ptsname");
	if (ioctl(master, TIOCSWINSZ, &ws) < 0)
		die("TIOCSWINSZ");

	sigset_t chld, old;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &chld, &old) < 0)
		die("sigprocmask");
	int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		die("signalfd");

	/* The relay holds the terminal's other end open for as long as it runs: the master then never
	 * reads as hung up (which poll would report without end) while the program closes or has not
	 * yet opened its side. */
	int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		die("open pty");

	pid_t child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		close(3);
		if (setsid() < 0)
			die("setsid (pty)");
		if (ioctl(slave, TIOCSCTTY, 0) < 0)
			die("TIOCSCTTY");
		if (dup2(slave, 0) < 0 || dup2(slave, 1) < 0 || dup2(slave, 2) < 0)
			die("dup2");
		execvp(argv[0], argv);
		die("exec");
	}
	/* Terminal output is read as it comes; input waits in `in` while the terminal is full. */
	if (fcntl(master, F_SETFL, O_NONBLOCK) < 0)
		die("O_NONBLOCK");
	signal(SIGPIPE, SIG_DFL);

	char in[4096], out[16384], ctl[128];
	size_t in_len = 0, in_off = 0, ctl_len = 0;
	int stdin_open = 1, ctl_open = 1, status = 0, exited = 0;
	while (!exited) {
		struct pollfd p[4] = {
			{ .fd = stdin_open && in_len == 0 ? 0 : -1, .events = POLLIN },
			{ .fd = master, .events = POLLIN | (in_len ? POLLOUT : 0) },
			{ .fd = ctl_open ? 3 : -1, .events = POLLIN },
			{ .fd = sfd, .events = POLLIN },
		};
		if (poll(p, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		/* Control first: a resize sent before some input applies before that input. */
		if (p[2].revents) {
			ssize_t r = read(3, ctl + ctl_len, sizeof ctl - 1 - ctl_len);
			if (r <= 0 && !(r < 0 && errno == EINTR))
				ctl_open = 0;
			else if (r > 0) {
				ctl_len += (size_t)r;
				char *nl;
				while ((nl = memchr(ctl, '\n', ctl_len))) {
					*nl = 0;
					control(master, child, ctl);
					ctl_len -= (size_t)(nl + 1 - ctl);
					memmove(ctl, nl + 1, ctl_len);
				}
				if (ctl_len == sizeof ctl - 1)
					ctl_len = 0; /* a line this long is not one of ours */
			}
		}
		if (p[0].revents) {
			ssize_t r = read(0, in, sizeof in);
			if (r > 0) {
				in_len = (size_t)r;
				in_off = 0;
			} else if (r == 0 || errno != EINTR)
				stdin_open = 0;
		}
		if (in_len && (p[1].revents & POLLOUT)) {
			ssize_t w = write(master, in + in_off, in_len);
			if (w > 0) {
				in_off += (size_t)w;
				in_len -= (size_t)w;
			} else if (w < 0 && errno != EAGAIN && errno != EINTR)
				in_len = 0; /* terminal gone: drop the input */
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = read(master, out, sizeof out);
			if (r > 0 && write_all(1, out, (size_t)r) < 0)
				die("write output");
		}
		if (p[3].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) > 0) {
			}
			if (waitpid(child, &status, WNOHANG) == child)
				exited = 1;
		}
	}
	/* What the program wrote before it exited is still in the terminal: pass it on. Processes it
	 * left behind may keep the terminal open, so read only what is there now. */
	for (;;) {
		ssize_t r = read(master, out, sizeof out);
		if (r > 0) {
			if (write_all(1, out, (size_t)r) < 0)
				break;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		break;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 127;
}
