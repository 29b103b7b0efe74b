// See CSluice.h for the contract of each function.
#include "CSluice.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

_Static_assert(sizeof(struct ifreq) == 40, "struct ifreq layout changed");
_Static_assert(CSLUICE_MAX_FDS <= 253, "SCM_MAX_FD is 253");

int csluice_socketpair(int kind, int fds[2]) {
    int type = kind == 1 ? SOCK_SEQPACKET : (kind == 2 ? SOCK_DGRAM : SOCK_STREAM);
    return socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds) == 0 ? 0 : -errno;
}

ssize_t csluice_send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds, int dontwait) {
    if (nfds < 0 || nfds > CSLUICE_MAX_FDS) return -EINVAL;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    union {
        char buf[CMSG_SPACE(sizeof(int) * CSLUICE_MAX_FDS)];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t n;
    do {
        n = sendmsg(sock, &msg, MSG_NOSIGNAL | (dontwait ? MSG_DONTWAIT : 0));
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

ssize_t csluice_recv_with_fds(int sock, void *buf, size_t len, int fds[CSLUICE_MAX_FDS], int *nfds, int *truncated,
                              int dontwait) {
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    union {
        char buf[CMSG_SPACE(sizeof(int) * CSLUICE_MAX_FDS)];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof(control.buf)};
    *nfds = 0;
    *truncated = 0;
    ssize_t n;
    do {
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | (dontwait ? MSG_DONTWAIT : 0));
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *data = (int *)CMSG_DATA(c);
        for (int i = 0; i < count; i++) {
            if (*nfds < CSLUICE_MAX_FDS) {
                fds[(*nfds)++] = data[i];
            } else {
                close(data[i]);  // never leak what we cannot hand back
                *truncated = 1;
            }
        }
    }
    if (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) *truncated = 1;
    return n;
}

int csluice_peer_credentials(int sock, pid_t *pid, uid_t *uid, gid_t *gid) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -errno;
    *pid = cred.pid;
    *uid = cred.uid;
    *gid = cred.gid;
    return 0;
}

int csluice_accept(int sock, int nonblock) {
    int fd;
    do {
        fd = accept4(sock, NULL, NULL, SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0));
    } while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

static int fill_sockaddr_un(struct sockaddr_un *addr, const char *path) {
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(addr->sun_path)) return -ENAMETOOLONG;
    memcpy(addr->sun_path, path, len);
    return 0;
}

int csluice_listen_unix(const char *path, unsigned int mode, int backlog) {
    struct sockaddr_un addr;
    int rc = fill_sockaddr_un(&addr, path);
    if (rc < 0) return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path);  // stale socket of a dead run
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || chmod(path, mode) != 0 || listen(fd, backlog) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

int csluice_connect_unix(const char *path) {
    struct sockaddr_un addr;
    int rc = fill_sockaddr_un(&addr, path);
    if (rc < 0) return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

int csluice_set_nonblocking(int fd, int on) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -errno;
    flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    return fcntl(fd, F_SETFL, flags) == 0 ? 0 : -errno;
}

int csluice_pipe(int fds[2]) { return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno; }

int csluice_pidfd_open(pid_t pid) {
    long fd = syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : (int)fd;
}

static int poll_one(int fd, short events, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = events};
    int rc;
    do {
        rc = poll(&p, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) return -errno;
    return rc > 0 ? 1 : 0;
}

int csluice_poll_readable(int fd, int timeout_ms) { return poll_one(fd, POLLIN, timeout_ms); }

int csluice_poll_writable(int fd, int timeout_ms) { return poll_one(fd, POLLOUT, timeout_ms); }

int csluice_set_no_new_privs(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 ? 0 : -errno; }

int csluice_set_parent_death_signal(int sig) { return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0 ? 0 : -errno; }

int csluice_set_process_name(const char *name) {
    return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0) == 0 ? 0 : -errno;
}

int csluice_capabilities_get(uint64_t *effective, uint64_t *permitted, uint64_t *inheritable) {
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capget, &hdr, data) != 0) return -errno;
    *effective = (uint64_t)data[0].effective | ((uint64_t)data[1].effective << 32);
    *permitted = (uint64_t)data[0].permitted | ((uint64_t)data[1].permitted << 32);
    *inheritable = (uint64_t)data[0].inheritable | ((uint64_t)data[1].inheritable << 32);
    return 0;
}

int csluice_cap_last_cap(void) {
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 40;  // CAP_CHECKPOINT_RESTORE on 5.9+; a safe guess when /proc is absent
    char buf[16] = {0};
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) return 40;
    int v = 0;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) v = v * 10 + (buf[i] - '0');
    return v > 0 && v < 64 ? v : 40;
}

// MARK: - Spawning

/// Async-signal-safe: report (step, errno) to the parent and exit.
static void child_fail(int report_fd, const char *step, int err) {
    char msg[64];
    size_t len = strlen(step);
    if (len > sizeof(msg) - 5) len = sizeof(msg) - 5;
    memcpy(msg, &err, sizeof(int));
    memcpy(msg + sizeof(int), step, len);
    ssize_t ignored = write(report_fd, msg, sizeof(int) + len);
    (void)ignored;
    _exit(127);
}

static int capset_masks(uint64_t effective, uint64_t permitted, uint64_t inheritable) {
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    data[0].effective = (uint32_t)effective;
    data[1].effective = (uint32_t)(effective >> 32);
    data[0].permitted = (uint32_t)permitted;
    data[1].permitted = (uint32_t)(permitted >> 32);
    data[0].inheritable = (uint32_t)inheritable;
    data[1].inheritable = (uint32_t)(inheritable >> 32);
    return syscall(SYS_capset, &hdr, data) == 0 ? 0 : -1;
}

/// The child side of csluice_spawn. Only async-signal-safe calls from here on.
static void spawn_child(const csluice_spawn_request *req, int report_fd, int last_cap, pid_t parent) {
    // Signals: a clean slate, whatever the Swift runtime set up in the parent.
    sigset_t none;
    sigemptyset(&none);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        struct sigaction dfl;
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        sigaction(sig, &dfl, NULL);
    }
    if (sigprocmask(SIG_SETMASK, &none, NULL) != 0) child_fail(report_fd, "sigprocmask", errno);

    if (req->new_session && setsid() < 0) child_fail(report_fd, "setsid", errno);

    // Descriptors: move the requested ones above every target slot first, so that
    // installing slot i never clobbers a source that is still needed.
    int high = req->nfds + 3;
    if (high < 10) high = 10;
    int moved[64];
    if (req->nfds > 64) child_fail(report_fd, "too many descriptors", E2BIG);
    int devnull = -1;
    for (int i = 0; i < req->nfds; i++) {
        int src = req->fds[i];
        if (src < 0) {
            if (devnull < 0) {
                devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (devnull < 0) child_fail(report_fd, "open /dev/null", errno);
            }
            src = devnull;
        }
        moved[i] = fcntl(src, F_DUPFD_CLOEXEC, high + 1);
        if (moved[i] < 0) child_fail(report_fd, "fcntl F_DUPFD", errno);
    }
    // The report pipe must stay open (and close-on-exec) above every slot too.
    int report = fcntl(report_fd, F_DUPFD_CLOEXEC, high + 1 + req->nfds);
    if (report < 0) child_fail(report_fd, "fcntl F_DUPFD report", errno);
    report_fd = report;
    for (int i = 0; i < req->nfds; i++) {
        if (dup2(moved[i], i) < 0) child_fail(report_fd, "dup2", errno);  // dup2 clears FD_CLOEXEC
    }
    // Close everything else but the report pipe (close-on-exec already).
    if (syscall(SYS_close_range, (unsigned)req->nfds, (unsigned)report_fd - 1, 0) != 0)
        child_fail(report_fd, "close_range", errno);
    if (syscall(SYS_close_range, (unsigned)report_fd + 1, ~0U, 0) != 0) child_fail(report_fd, "close_range", errno);

    if (req->limit_capabilities) {
        // Bounding set first: it needs CAP_SETPCAP, which we still hold as root.
        for (int cap = 0; cap <= last_cap; cap++) {
            if (req->capabilities & (1ULL << cap)) continue;
            // EINVAL: the kernel does not know this cap. EPERM: no CAP_SETPCAP (unprivileged
            // start); the caps are still cleared below and no_new_privs blocks regaining them.
            if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL && errno != EPERM)
                child_fail(report_fd, "PR_CAPBSET_DROP", errno);
        }
    }
    if (req->change_identity) {
        // Keep the permitted set across the uid change; we trim it right after.
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) child_fail(report_fd, "PR_SET_KEEPCAPS", errno);
        if (setgroups((size_t)req->ngroups, req->groups) != 0) child_fail(report_fd, "setgroups", errno);
        if (setresgid(req->gid, req->gid, req->gid) != 0) child_fail(report_fd, "setresgid", errno);
        if (setresuid(req->uid, req->uid, req->uid) != 0) child_fail(report_fd, "setresuid", errno);
    }
    if (req->limit_capabilities) {
        uint64_t keep = req->capabilities;
        // Effective + permitted + inheritable = the mask; the inheritable bit is what
        // allows the ambient raise below. An empty mask clears all three.
        if (capset_masks(keep, keep, keep) != 0) child_fail(report_fd, "capset", errno);
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) child_fail(report_fd, "PR_CAP_AMBIENT_CLEAR_ALL", errno);
        for (int cap = 0; cap <= last_cap; cap++) {
            if (!(keep & (1ULL << cap))) continue;
            if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0) child_fail(report_fd, "PR_CAP_AMBIENT_RAISE", errno);
        }
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(report_fd, "PR_SET_NO_NEW_PRIVS", errno);
    // After the credential change: set*id() clears the parent-death signal.
    if (req->parent_death_signal > 0) {
        if (prctl(PR_SET_PDEATHSIG, req->parent_death_signal, 0, 0, 0) != 0) child_fail(report_fd, "PR_SET_PDEATHSIG", errno);
        if (getppid() != parent) _exit(0);  // the parent died before we armed the signal
    }
    execve(req->path, req->argv, req->envp);
    child_fail(report_fd, "execve", errno);
}

pid_t csluice_spawn(const csluice_spawn_request *req, char *failed_step, size_t failed_step_len) {
    if (failed_step && failed_step_len) failed_step[0] = 0;
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) return -errno;
    int last_cap = csluice_cap_last_cap();
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(report[0]);
        close(report[1]);
        return -err;
    }
    if (pid == 0) {
        close(report[0]);
        spawn_child(req, report[1], last_cap, parent);
        _exit(127);
    }
    close(report[1]);
    char msg[64];
    ssize_t n;
    do {
        n = read(report[0], msg, sizeof(msg));
    } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n <= 0) return pid;  // EOF: execve succeeded and closed the pipe
    int err = EIO;
    if ((size_t)n >= sizeof(int)) memcpy(&err, msg, sizeof(int));
    if (failed_step && failed_step_len) {
        size_t len = (size_t)n > sizeof(int) ? (size_t)n - sizeof(int) : 0;
        if (len >= failed_step_len) len = failed_step_len - 1;
        memcpy(failed_step, msg + sizeof(int), len);
        failed_step[len] = 0;
    }
    // Reap the failed child so it does not linger as a zombie.
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return err > 0 ? -err : -EIO;
}

static int signal_pipe_write_end = -1;

static void signal_pipe_handler(int sig) {
    int saved = errno;
    unsigned char byte = (unsigned char)sig;
    ssize_t ignored = write(signal_pipe_write_end, &byte, 1);  // full pipe: the loop is already awake
    (void)ignored;
    errno = saved;
}

int csluice_signal_pipe(const int *signals, int count) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return -errno;
    signal_pipe_write_end = fds[1];
    for (int i = 0; i < count; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = signal_pipe_handler;
        sa.sa_flags = SA_RESTART | (signals[i] == SIGCHLD ? SA_NOCLDSTOP : 0);
        sigemptyset(&sa.sa_mask);
        if (sigaction(signals[i], &sa, NULL) != 0) return -errno;
    }
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < count; i++) sigaddset(&set, signals[i]);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    return fds[0];
}

pid_t csluice_reap_child(int *exit_code, int *term_signal) {
    int status = 0;
    pid_t pid;
    do {
        pid = waitpid(-1, &status, WNOHANG);
    } while (pid < 0 && errno == EINTR);
    if (pid < 0) return -errno;
    *exit_code = -1;
    *term_signal = 0;
    if (pid > 0) {
        if (WIFEXITED(status)) *exit_code = WEXITSTATUS(status);
        if (WIFSIGNALED(status)) *term_signal = WTERMSIG(status);
    }
    return pid;
}

int csluice_kill(pid_t pid, int sig) { return kill(pid, sig) == 0 ? 0 : -errno; }

// MARK: - TUN

int csluice_tun_open(const char *name, int vnet_hdr, int multi_queue, char *actual_name) {
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    if (vnet_hdr) ifr.ifr_flags |= IFF_VNET_HDR;
    if (multi_queue) ifr.ifr_flags |= IFF_MULTI_QUEUE;
    if (name) strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    if (actual_name) {
        memcpy(actual_name, ifr.ifr_name, IFNAMSIZ);
        actual_name[IFNAMSIZ - 1] = 0;
    }
    return fd;
}
