/*
 * rds-init: PID 1 of a run-dat-sheesh microVM.
 *
 * Runs from the initramfs, or straight from the read-only rootfs when the kernel has its
 * drivers built in (no /modules.load then), builds the root filesystem (read-only image +
 * writable overlay disk), switches into it while staying PID 1, then starts and supervises
 * the guest agent. It powers the VM off on SIGTERM/SIGINT/SIGUSR2 and on any fatal error
 * before the agent starts, so the host always sees QEMU exit instead of a hung guest.
 *
 * Built with: musl-gcc -static -Os -Wall -Wextra
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define AGENT_PATH "/opt/rds/agent/agent.js"
#define NODE_PATH "/usr/local/bin/node"
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 5000
#define BACKOFF_RESET_MS 30000

/* Where the layers are mounted in the first root: the initramfs, or the rootfs image when
 * the kernel mounted it itself (the image builder creates the /rds directories). */
#define INITRAMFS_UPPER "/upper"
#define DIRECT_UPPER "/rds/upper"
#define DIRECT_NEWROOT "/rds/root"
#define DIRECT_PUT_OLD "rds/oldroot" /* relative to the new root, as pivot_root wants it */

static int old_root_fd = -1; /* the first root, kept so shutdown can reach the overlay disk again */
static const char *upper_dir = INITRAMFS_UPPER;
static int from_initramfs = 1;
static int have_console;      /* fds 1 and 2 point at /dev/console */

/* Before virtio_console is loaded there is no console, so early messages go to the
 * kernel log (readable with dmesg) instead of being lost. */
static void logmsg(const char *fmt, ...)
{
	char buf[512];
	int n = snprintf(buf, sizeof buf, "[init] ");
	va_list ap;
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof buf - 2)
		n = sizeof buf - 2;
	buf[n++] = '\n';
	if (!have_console || write(2, buf, n) < 0) {
		int k = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
		if (k >= 0) {
			(void)!write(k, buf, n);
			close(k);
		}
	}
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void power_off(void)
{
	sync();
	reboot(RB_POWER_OFF);
	/* Only reached if power-off is unsupported; exiting PID 1 panics and panic=-1 plus
	 * QEMU's -no-reboot still ends the VM. */
	_exit(1);
}

static void fatal(const char *step)
{
	logmsg("fatal: %s: %s; powering off", step, strerror(errno));
	power_off();
}

static int mount_or_log(const char *src, const char *dst, const char *type, unsigned long flags, const char *data)
{
	if (mount(src, dst, type, flags, data) == 0)
		return 0;
	logmsg("mount %s on %s (%s): %s", src, dst, type ? type : "-", strerror(errno));
	return -1;
}

static void mkdir_p(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		logmsg("mkdir %s: %s", path, strerror(errno));
}

/* The kernel starts us with fds 0-2 closed (no console yet); keep them pointed at
 * /dev/null so a later open() never lands on 0-2 by accident. */
static void early_mounts(void)
{
	if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") < 0 && errno != EBUSY)
		fatal("mount /dev");
	int fd = open("/dev/null", O_RDWR);
	while (fd >= 0 && fd < 2)
		fd = dup(fd);
	if (fd > 2)
		close(fd);
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		fatal("mount /proc");
	if (mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		fatal("mount /sys");
}

/* /modules.load lists absolute paths in dependency order (computed by the image builder
 * from depmod output), so a plain sequential finit_module is enough. */
static void load_modules(void)
{
	FILE *f = fopen("/modules.load", "re");
	if (!f)
		fatal("open /modules.load");
	char line[512];
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (!line[0] || line[0] == '#')
			continue;
		int fd = open(line, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			logmsg("open module %s: %s", line, strerror(errno));
			continue;
		}
		if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
			logmsg("load module %s: %s", line, strerror(errno));
		close(fd);
	}
	fclose(f);
}

static int wait_for(const char *path, int timeout_ms)
{
	for (int waited = 0; access(path, F_OK) < 0; waited += 5) {
		if (waited >= timeout_ms)
			return -1;
		sleep_ms(5);
	}
	return 0;
}

/* hvc0 appears only after the host side of virtio-serial announced the console port,
 * which is asynchronous to module loading, and /dev/console fails with ENODEV until the
 * hvc console is registered (a little after the /dev/hvc0 node shows up). */
static void open_console(void)
{
	int fd = -1;
	for (int waited = 0; waited <= 1000 && fd < 0; waited += 5) {
		fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
		if (fd < 0)
			sleep_ms(5);
	}
	if (fd < 0) {
		logmsg("no /dev/console after 1 s (%s); console output is lost", strerror(errno));
		return;
	}
	dup2(fd, 1);
	dup2(fd, 2);
	close(fd);
	have_console = 1;
}

static void wait_disks(void)
{
	if (wait_for("/dev/vda", 5000) < 0) {
		errno = ENOENT;
		fatal("wait for /dev/vda");
	}
	if (wait_for("/dev/vdb", 5000) < 0) {
		errno = ENOENT;
		fatal("wait for /dev/vdb");
	}
}

/* Booted with root=/dev/vda ro: the kernel already mounted the image as /, so it is the
 * lower layer itself; the overlay disk and the merged root go on directories inside it. */
static void mount_overlay_root_direct(void)
{
	if (mount("/dev/vdb", DIRECT_UPPER, "ext4", MS_NOATIME, NULL) < 0)
		fatal("mount /dev/vdb on " DIRECT_UPPER);
	mkdir_p(DIRECT_UPPER "/upper", 0755);
	mkdir_p(DIRECT_UPPER "/work", 0755);
	if (mount("overlay", DIRECT_NEWROOT, "overlay", 0,
		  "lowerdir=/,upperdir=" DIRECT_UPPER "/upper,workdir=" DIRECT_UPPER "/work") < 0)
		fatal("mount overlay on " DIRECT_NEWROOT);
}

/* The image root is a real mount, not the initramfs, so pivot_root works and puts it under
 * the new root, where it stays mounted (shutdown needs the overlay disk's mount in our
 * namespace to remount it read-only); /rds is 0700, so only root can see it there. */
static void pivot_root_direct(void)
{
	old_root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (old_root_fd < 0)
		fatal("open image root");
	if (mount("/dev", DIRECT_NEWROOT "/dev", NULL, MS_MOVE, NULL) < 0)
		fatal("move /dev");
	umount2("/proc", MNT_DETACH);
	umount2("/sys", MNT_DETACH);
	if (chdir(DIRECT_NEWROOT) < 0)
		fatal("chdir " DIRECT_NEWROOT);
	if (syscall(SYS_pivot_root, ".", DIRECT_PUT_OLD) < 0)
		fatal("pivot_root");
	if (chdir("/") < 0)
		fatal("chdir /");
}

static void mount_overlay_root(void)
{
	/* noload: the image has no journal, and the host shares it read-only between VMs, so
	 * the kernel must never try to replay or write anything to it. */
	if (mount("/dev/vda", "/lower", "ext4", MS_RDONLY, "noload") < 0)
		fatal("mount /dev/vda on /lower");
	if (mount("/dev/vdb", "/upper", "ext4", MS_NOATIME, NULL) < 0)
		fatal("mount /dev/vdb on /upper");
	mkdir_p("/upper/upper", 0755);
	mkdir_p("/upper/work", 0755);
	if (mount("overlay", "/newroot", "overlay", 0,
		  "lowerdir=/lower,upperdir=/upper/upper,workdir=/upper/work") < 0)
		fatal("mount overlay on /newroot");
}

/* Classic switch_root: the initramfs cannot be pivot_root'ed away, so the new root is
 * moved on top of it and we chroot into it. We stay the same process (PID 1). */
static void switch_root(void)
{
	old_root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (old_root_fd < 0)
		fatal("open initramfs root");
	if (mount("/dev", "/newroot/dev", NULL, MS_MOVE, NULL) < 0)
		fatal("move /dev");
	/* The new root gets fresh proc/sys instances; these would only be hidden. */
	umount2("/proc", MNT_DETACH);
	umount2("/sys", MNT_DETACH);
	if (chdir("/newroot") < 0)
		fatal("chdir /newroot");
	if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
		fatal("move /newroot to /");
	if (chroot(".") < 0)
		fatal("chroot");
	if (chdir("/") < 0)
		fatal("chdir /");
}

static void write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, s, strlen(s)) < 0)
		logmsg("write '%s' to %s: %s", s, path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void setup_cgroups(void)
{
	mkdir_p("/sys/fs/cgroup", 0755);
	if (mount_or_log("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return;
	/* One controller per write: a single write with an unavailable one fails as a whole. */
	write_file("/sys/fs/cgroup/cgroup.subtree_control", "+pids");
	write_file("/sys/fs/cgroup/cgroup.subtree_control", "+memory");
	write_file("/sys/fs/cgroup/cgroup.subtree_control", "+cpu");
}

static void root_mounts(void)
{
	/* hidepid=2: user code (uid 1000) sees only its own processes in /proc. The agent and
	 * the rest of the guest run as root, whose cmdline and environ would otherwise be readable
	 * by anyone; no gid= exemption, nobody but root needs other users' processes. A kernel
	 * that refuses the option still gets a /proc (the guest cannot run without one), loudly. */
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2") < 0) {
		logmsg("mount /proc with hidepid=2: %s; other users' processes stay visible", strerror(errno));
		mount_or_log("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	}
	mount_or_log("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mkdir_p("/dev/pts", 0755);
	mount_or_log("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "ptmxmode=0666,mode=0620,gid=5");
	/* devtmpfs' /dev/ptmx is the legacy node; point it at this devpts instance. */
	unlink("/dev/ptmx");
	if (symlink("pts/ptmx", "/dev/ptmx") < 0)
		logmsg("symlink /dev/ptmx: %s", strerror(errno));
	mkdir_p("/dev/shm", 01777);
	mount_or_log("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	mount_or_log("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	setup_cgroups();
	/* A bind, not a symlink, so getcwd() and realpath() inside /workspace stay /workspace. */
	mkdir_p("/home/user", 0755);
	mkdir_p("/workspace", 0755);
	mount_or_log("/home/user", "/workspace", NULL, MS_BIND, NULL);
}

static void setup_network(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		logmsg("get lo flags: %s", strerror(errno));
	else {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			logmsg("bring lo up: %s", strerror(errno));
	}
	if (s >= 0)
		close(s);
	if (sethostname("sandbox", 7) < 0)
		logmsg("sethostname: %s", strerror(errno));
}

static pid_t start_agent(void)
{
	pid_t pid = fork();
	if (pid < 0) {
		logmsg("fork agent: %s", strerror(errno));
		return -1;
	}
	if (pid > 0)
		return pid;
	/* Child: undo PID 1's signal setup, which exec would otherwise inherit. */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	int fd = open("/dev/null", O_RDONLY);
	if (fd >= 0 && fd != 0) {
		dup2(fd, 0);
		close(fd);
	}
	/* --jitless: V8 interprets the agent's JavaScript and makes no machine code at run time.
	 * Under TCG every piece of code V8 generates (and regenerates) is translated again by QEMU
	 * and held in its translation cache: without it an idle clone's QEMU holds ~20 MB less and
	 * exec, run-ts/run-js and downloads are faster (docs/benchmarks.md); the agent's byte
	 * paths work in large batches so the interpreter costs little there. It also leaves the
	 * root process no writable-and-executable memory. User code (Node, Deno) keeps its JIT. */
	char *argv[] = { NODE_PATH, "--jitless", AGENT_PATH, NULL };
	char *envp[] = {
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "LANG=C.UTF-8", "NODE_ENV=production", NULL,
	};
	if (chdir("/") < 0)
		_exit(127);
	execve(NODE_PATH, argv, envp);
	logmsg("exec %s: %s", NODE_PATH, strerror(errno));
	_exit(127);
}

static void reap_for(int timeout_ms)
{
	long long end = now_ms() + timeout_ms;
	for (;;) {
		pid_t p = waitpid(-1, NULL, WNOHANG);
		if (p < 0 && errno == ECHILD)
			return;
		if (p > 0)
			continue;
		if (now_ms() >= end)
			return;
		sleep_ms(10);
	}
}

static void shutdown_vm(int sig)
{
	logmsg("signal %d: shutting down", sig);
	kill(-1, SIGTERM);
	reap_for(1000);
	kill(-1, SIGKILL);
	reap_for(500);
	sync();
	if (umount2("/workspace", 0) < 0 && umount2("/workspace", MNT_DETACH) < 0)
		logmsg("umount /workspace: %s", strerror(errno));
	umount2("/dev/pts", MNT_DETACH);
	umount2("/dev/shm", MNT_DETACH);
	umount2("/run", MNT_DETACH);
	umount2("/sys/fs/cgroup", MNT_DETACH);
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
		logmsg("remount / ro: %s", strerror(errno));
	/* The overlay disk's ext4 sits under the overlay, reachable only from the first root
	 * (initramfs or image). Remounting it read-only writes a clean superblock (no journal
	 * to replay). */
	if (old_root_fd >= 0 && fchdir(old_root_fd) == 0 && chroot(".") == 0) {
		sync();
		if (mount(NULL, upper_dir, NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
			logmsg("remount %s ro: %s", upper_dir, strerror(errno));
		umount2(upper_dir, MNT_DETACH);
		if (from_initramfs)
			umount2("/lower", MNT_DETACH);
	} else {
		logmsg("cannot return to the first root: %s", strerror(errno));
	}
	power_off();
}

/* Signals arrive through a signalfd so all real work happens in the main loop. */
static void supervise(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0)
		fatal("signalfd");

	int backoff = BACKOFF_MIN_MS;
	long long started = now_ms(), restart_at = -1;
	pid_t agent = start_agent();
	if (agent < 0)
		fatal("start agent");
	logmsg("agent started (pid %d)", agent);

	for (;;) {
		int timeout = -1;
		if (agent < 0 && restart_at >= 0) {
			long long left = restart_at - now_ms();
			timeout = left > 0 ? (int)left : 0;
		}
		struct pollfd pfd = { sfd, POLLIN, 0 };
		int r = poll(&pfd, 1, timeout);
		if (r < 0 && errno != EINTR)
			logmsg("poll: %s", strerror(errno));
		if (r > 0) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
				int sig = si.ssi_signo;
				if (sig == SIGTERM || sig == SIGINT || sig == SIGUSR2)
					shutdown_vm(sig);
			}
			/* Reap everything: orphans of the whole VM are reparented to us. */
			int status;
			pid_t p;
			while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
				if (p != agent)
					continue;
				long long ran = now_ms() - started;
				if (WIFEXITED(status))
					logmsg("agent exited with status %d after %lld ms", WEXITSTATUS(status), ran);
				else
					logmsg("agent killed by signal %d after %lld ms", WTERMSIG(status), ran);
				if (ran >= BACKOFF_RESET_MS)
					backoff = BACKOFF_MIN_MS;
				restart_at = now_ms() + backoff;
				backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
				agent = -1;
			}
		}
		if (agent < 0 && restart_at >= 0 && now_ms() >= restart_at) {
			started = now_ms();
			agent = start_agent();
			restart_at = agent < 0 ? now_ms() + backoff : -1;
			if (agent > 0)
				logmsg("agent restarted (pid %d)", agent);
		}
	}
}

int main(void)
{
	if (getpid() != 1) {
		fprintf(stderr, "rds-init: must run as PID 1\n");
		return 1;
	}
	/* Ctrl-Alt-Del (QEMU system_reset/sendkey) then becomes SIGINT to us instead of an
	 * immediate hard reboot. */
	reboot(RB_DISABLE_CAD);
	umask(022);
	early_mounts();
	/* The image builder puts /modules.load only into the initramfs. */
	from_initramfs = access("/modules.load", F_OK) == 0;
	if (from_initramfs)
		load_modules();
	open_console();
	wait_disks();
	if (from_initramfs) {
		mount_overlay_root();
		switch_root();
	} else {
		upper_dir = DIRECT_UPPER;
		logmsg("no initramfs: building the root from the booted image");
		mount_overlay_root_direct();
		pivot_root_direct();
	}
	root_mounts();
	setup_network();
	supervise();
	return 0;
}
