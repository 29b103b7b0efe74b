// See CSluice.h for the contract of each function.
#include "CSluice.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
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

int csluice_setns_net(int fd) { return setns(fd, CLONE_NEWNET) == 0 ? 0 : -errno; }

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

pid_t csluice_wait_child(pid_t pid, int nohang, int *exit_code, int *term_signal) {
    int status = 0;
    pid_t got;
    do {
        got = waitpid(pid, &status, nohang ? WNOHANG : 0);
    } while (got < 0 && errno == EINTR);
    if (got < 0) return -errno;
    *exit_code = -1;
    *term_signal = 0;
    if (got > 0) {
        if (WIFEXITED(status)) *exit_code = WEXITSTATUS(status);
        if (WIFSIGNALED(status)) *term_signal = WTERMSIG(status);
    }
    return got;
}

pid_t csluice_reap_child(int *exit_code, int *term_signal) { return csluice_wait_child(-1, 1, exit_code, term_signal); }

int csluice_kill(pid_t pid, int sig) { return kill(pid, sig) == 0 ? 0 : -errno; }

// MARK: - TUN

/// TUNSETIFF with `flags` on `fd`, naming the device `name` (NULL: the kernel picks); the name it got goes to
/// `actual_name` (IFNAMSIZ bytes) when given.
static int tun_set_iff(int fd, const char *name, short flags, char *actual_name) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = flags;
    if (name) strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) != 0) return -errno;
    if (actual_name) {
        memcpy(actual_name, ifr.ifr_name, IFNAMSIZ);
        actual_name[IFNAMSIZ - 1] = 0;
    }
    return fd;
}

int csluice_tun_attach(int fd, const char *name, int vnet_hdr, int multi_queue, char *actual_name) {
    short flags = IFF_TUN | IFF_NO_PI;
    if (vnet_hdr) flags |= IFF_VNET_HDR;
    if (multi_queue) flags |= IFF_MULTI_QUEUE;
    return tun_set_iff(fd, name, flags, actual_name);
}

int csluice_tun_attach_with_packet_info(int fd, const char *name, char *actual_name) {
    return tun_set_iff(fd, name, IFF_TUN, actual_name);
}

int csluice_tun_open(const char *name, int vnet_hdr, int multi_queue, char *actual_name) {
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = csluice_tun_attach(fd, name, vnet_hdr, multi_queue, actual_name);
    if (rc < 0) close(fd);
    return rc;
}

int csluice_tun_set_persist(int fd, int on) { return ioctl(fd, TUNSETPERSIST, on ? 1 : 0) == 0 ? 0 : -errno; }

int csluice_tun_enable_tso(int fd) {
    unsigned int flags = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
    return ioctl(fd, TUNSETOFFLOAD, flags) == 0 ? 0 : -errno;
}

ssize_t csluice_tun_write_vnet(int fd, const void *header, size_t header_length, const void *packet, size_t length) {
    struct iovec parts[2] = {
        {.iov_base = (void *)header, .iov_len = header_length},
        {.iov_base = (void *)packet, .iov_len = length},
    };
    ssize_t n;
    do {
        n = writev(fd, parts, 2);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

int csluice_tun_set_owner(int fd, uid_t uid) { return ioctl(fd, TUNSETOWNER, (unsigned long)uid) == 0 ? 0 : -errno; }

int csluice_tun_get_name(int fd, char *name) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    if (ioctl(fd, TUNGETIFF, &ifr) != 0) return -errno;
    memcpy(name, ifr.ifr_name, IFNAMSIZ);
    name[IFNAMSIZ - 1] = 0;
    return 0;
}

// MARK: - epoll and splice

int csluice_epoll_create(void) {
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int csluice_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t cookie) {
    struct epoll_event ev = {.events = events, .data.u64 = cookie};
    int kop = op == 1 ? EPOLL_CTL_ADD : (op == 2 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD);
    return epoll_ctl(epfd, kop, fd, &ev) == 0 ? 0 : -errno;
}

int csluice_epoll_wait(int epfd, uint64_t *cookies, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event evs[256];
    if (max > 256) max = 256;
    int n;
    do {
        n = epoll_wait(epfd, evs, max, timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) {
        cookies[i] = evs[i].data.u64;
        events[i] = evs[i].events;
    }
    return n;
}

int csluice_eventfd(void) {
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

ssize_t csluice_splice(int fd_in, int fd_out, size_t len, int more) {
    ssize_t n;
    do {
        n = splice(fd_in, NULL, fd_out, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK | (more ? SPLICE_F_MORE : 0));
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

int csluice_splice_pipe(int fds[2], int size) {
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return -errno;
    if (size > 0) fcntl(fds[0], F_SETPIPE_SZ, size);  // best effort: pipe-max-size may be lower
    return 0;
}

int csluice_raise_nofile(uint64_t *soft, uint64_t *hard) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -errno;
    if (limit.rlim_cur < limit.rlim_max) {
        struct rlimit raised = {limit.rlim_max, limit.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
        else { *soft = limit.rlim_cur; *hard = limit.rlim_max; return -errno; }
    }
    *soft = limit.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)limit.rlim_cur;
    *hard = limit.rlim_max == RLIM_INFINITY ? UINT64_MAX : (uint64_t)limit.rlim_max;
    return 0;
}

// MARK: - IP sockets

static socklen_t fill_sockaddr(struct sockaddr_storage *ss, int family, const uint8_t *address, uint16_t port) {
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        memcpy(&sin->sin_addr, address, 4);
        return sizeof(*sin);
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    memcpy(&sin6->sin6_addr, address, 16);
    return sizeof(*sin6);
}

static void read_sockaddr(const struct sockaddr_storage *ss, int *family, uint8_t *address, uint16_t *port) {
    memset(address, 0, 16);
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        *family = AF_INET;
        memcpy(address, &sin->sin_addr, 4);
        *port = ntohs(sin->sin_port);
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        *family = AF_INET6;
        memcpy(address, &sin6->sin6_addr, 16);
        *port = ntohs(sin6->sin6_port);
    }
}

int csluice_socket(int family, int type, int protocol, int nonblock) {
    int fd = socket(family, type | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), protocol);
    return fd < 0 ? -errno : fd;
}

int csluice_bind_inet(int fd, int family, const uint8_t *address, uint16_t port, int freebind, int reuse) {
    int one = 1;
    if (freebind) {
        if (family == AF_INET) setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
        else setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one));
    }
    if (reuse) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_storage ss;
    socklen_t len = fill_sockaddr(&ss, family, address, port);
    return bind(fd, (struct sockaddr *)&ss, len) == 0 ? 0 : -errno;
}

int csluice_connect_inet(int fd, int family, const uint8_t *address, uint16_t port) {
    struct sockaddr_storage ss;
    socklen_t len = fill_sockaddr(&ss, family, address, port);
    int rc;
    do {
        rc = connect(fd, (struct sockaddr *)&ss, len);
    } while (rc < 0 && errno == EINTR);
    return rc == 0 ? 0 : -errno;
}

ssize_t csluice_sendto_inet(int fd, const void *buf, size_t len, int family, const uint8_t *address, uint16_t port) {
    struct sockaddr_storage ss;
    socklen_t slen = fill_sockaddr(&ss, family, address, port);
    ssize_t n;
    do {
        n = sendto(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&ss, slen);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

ssize_t csluice_recvfrom_inet(int fd, void *buf, size_t len, int *family, uint8_t *address, uint16_t *port) {
    struct sockaddr_storage ss;
    socklen_t slen = sizeof(ss);
    ssize_t n;
    do {
        n = recvfrom(fd, buf, len, MSG_DONTWAIT, (struct sockaddr *)&ss, &slen);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    read_sockaddr(&ss, family, address, port);
    return n;
}

int csluice_socket_address(int fd, int peer, int *family, uint8_t *address, uint16_t *port) {
    struct sockaddr_storage ss;
    socklen_t slen = sizeof(ss);
    int rc = peer ? getpeername(fd, (struct sockaddr *)&ss, &slen) : getsockname(fd, (struct sockaddr *)&ss, &slen);
    if (rc != 0) return -errno;
    read_sockaddr(&ss, family, address, port);
    return 0;
}

int csluice_accept_inet(int fd, int *family, uint8_t *address, uint16_t *port) {
    struct sockaddr_storage ss;
    socklen_t slen = sizeof(ss);
    int c;
    do {
        c = accept4(fd, (struct sockaddr *)&ss, &slen, SOCK_CLOEXEC | SOCK_NONBLOCK);
    } while (c < 0 && errno == EINTR);
    if (c < 0) return -errno;
    read_sockaddr(&ss, family, address, port);
    return c;
}

int csluice_setsockopt_int(int fd, int level, int name, int value) {
    return setsockopt(fd, level, name, &value, sizeof(value)) == 0 ? 0 : -errno;
}

int csluice_socket_error(int fd) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -errno;
    return err;
}

int csluice_bind_to_device(int fd, const char *ifname) {
    return setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname)) == 0 ? 0 : -errno;
}

int csluice_set_linger_reset(int fd) {
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    return setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)) == 0 ? 0 : -errno;
}

int csluice_shutdown_write(int fd) { return shutdown(fd, SHUT_WR) == 0 ? 0 : -errno; }

ssize_t csluice_write(int fd, const void *buf, size_t len) {
    ssize_t n;
    do {
        n = write(fd, buf, len);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

ssize_t csluice_read(int fd, void *buf, size_t len) {
    ssize_t n;
    do {
        n = read(fd, buf, len);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

ssize_t csluice_recv(int fd, void *buf, size_t len, int flags) {
    ssize_t n;
    do {
        n = recv(fd, buf, len, flags);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}
