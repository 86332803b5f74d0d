/*
 * rds-exec: how the (root) guest agent starts untrusted code.
 *
 *   rds-exec [--cgroup DIR] [--uid N] [--gid N] [--cwd DIR] [--umask 022] -- prog args...
 *   rds-exec --host-init UNIX_MS    (clock := UNIX_MS unless 0; stdin, up to 4096 bytes -> kernel RNG)
 *
 * Privileges are dropped here, in a tiny static binary, rather than through Node's
 * spawn options so the order (cgroup first, ids last-but-verified, no_new_privs) is
 * explicit and every failure is fatal with a clear message and exit status 127.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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
	fprintf(stderr, "usage: rds-exec [--cgroup DIR] [--uid N] [--gid N] [--cwd DIR] [--umask OCT] [--keep-fds N] -- prog args...\n"
			"       rds-exec --host-init UNIX_MS < entropy-bytes\n");
	exit(127);
}

static int add_entropy(void);

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
	int i = 1;

	if (argc == 3 && strcmp(argv[1], "--host-init") == 0)
		return host_init(argv[2]);
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
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
		else
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
	if (cwd && chdir(cwd) < 0)
		die("chdir");
	if (mask >= 0)
		umask((mode_t)mask & 0777);
	/* Untrusted code gets stdio (and the run's result pipe when asked) and nothing else
	 * the agent or PID 1 may have left open without close-on-exec. */
	if (keep_fds >= 3 && syscall(SYS_close_range, (unsigned)keep_fds, ~0U, 0) < 0 && errno != ENOSYS)
		die("close_range");
	execvp(argv[i], argv + i);
	die("exec");
	return 127;
}
