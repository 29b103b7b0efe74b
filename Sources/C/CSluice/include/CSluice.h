// CSluice: the few Linux calls Swift cannot express directly.
//
// Rules for this file (see STYLE.md): every function is prefixed `csluice_`, is documented
// here, and returns a non-negative value on success or `-errno` on failure (never sets
// errno as its only signal). Macros become functions; variadic calls (prctl, syscall,
// ioctl) get fixed-signature wrappers. Anything that must run between fork and exec lives
// here, because Swift must never call fork().
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The most descriptors one message may carry (SCM_RIGHTS); the IPC protocol has the
/// same bound so a receiver can size its control buffer once.
#define CSLUICE_MAX_FDS 16

// MARK: - Sockets

/// socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds). `seqpacket` 0 = SOCK_STREAM,
/// 1 = SOCK_SEQPACKET, 2 = SOCK_DGRAM. Returns 0 or -errno.
int csluice_socketpair(int seqpacket, int fds[2]);

/// sendmsg() of `len` bytes with `nfds` descriptors attached as one SCM_RIGHTS message
/// (nfds may be 0). MSG_NOSIGNAL is always set; `dontwait` adds MSG_DONTWAIT.
/// Returns the number of bytes sent (possibly short on a stream socket) or -errno.
ssize_t csluice_send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds, int dontwait);

/// recvmsg() into `buf` collecting up to CSLUICE_MAX_FDS descriptors (received with
/// MSG_CMSG_CLOEXEC) into `fds`, their count into `*nfds`. `*truncated` is set to 1 when
/// the kernel reported MSG_CTRUNC (descriptors were lost) or MSG_TRUNC.
/// Returns bytes read (0 = orderly EOF) or -errno.
ssize_t csluice_recv_with_fds(int sock, void *buf, size_t len, int fds[CSLUICE_MAX_FDS], int *nfds, int *truncated,
                              int dontwait);

/// SO_PEERCRED of a connected AF_UNIX socket. Returns 0 or -errno.
int csluice_peer_credentials(int sock, pid_t *pid, uid_t *uid, gid_t *gid);

/// accept4(sock, NULL, NULL, SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0)).
int csluice_accept(int sock, int nonblock);

/// Creates, binds and listens on an AF_UNIX SOCK_STREAM socket at `path` (unlinking a
/// stale socket file first) with the given file mode. Returns the fd or -errno.
int csluice_listen_unix(const char *path, unsigned int mode, int backlog);

/// Connects an AF_UNIX SOCK_STREAM socket to `path`. Returns the fd or -errno.
int csluice_connect_unix(const char *path);

/// Sets or clears O_NONBLOCK. Returns 0 or -errno.
int csluice_set_nonblocking(int fd, int on);

/// pipe2(fds, O_CLOEXEC). Returns 0 or -errno.
int csluice_pipe(int fds[2]);

// MARK: - Processes and privileges

/// pidfd_open(pid, 0) through syscall(). Returns the pidfd or -errno.
int csluice_pidfd_open(pid_t pid);

/// poll() on one fd for readability with a timeout in milliseconds (-1 = forever).
/// Returns 1 when readable (or hung up), 0 on timeout, -errno on failure.
int csluice_poll_readable(int fd, int timeout_ms);

/// poll() on one fd for writability; same results as csluice_poll_readable.
int csluice_poll_writable(int fd, int timeout_ms);

/// setns(fd, CLONE_NEWNET): moves the calling thread into a network namespace.
int csluice_setns_net(int fd);

/// prctl(PR_SET_NO_NEW_PRIVS, 1). Returns 0 or -errno.
int csluice_set_no_new_privs(void);

/// prctl(PR_SET_PDEATHSIG, sig). Returns 0 or -errno.
int csluice_set_parent_death_signal(int sig);

/// prctl(PR_SET_NAME, name): the thread/process name shown by ps and top.
int csluice_set_process_name(const char *name);

/// capget() of the calling process's effective, permitted and inheritable sets as 64-bit
/// masks (bit N = capability N). Returns 0 or -errno.
int csluice_capabilities_get(uint64_t *effective, uint64_t *permitted, uint64_t *inheritable);

/// Highest capability number the running kernel knows (/proc/sys/kernel/cap_last_cap).
int csluice_cap_last_cap(void);

/// Everything a worker process needs set up between fork and exec.
typedef struct csluice_spawn_request {
    const char *path;            ///< executable to run
    char *const *argv;           ///< NULL-terminated
    char *const *envp;           ///< NULL-terminated
    const int *fds;              ///< descriptors to install in the child as 0, 1, 2, 3, ...
    int nfds;                    ///< how many entries in `fds` (-1 entries become /dev/null)
    int change_identity;         ///< 1: setgroups/setresgid/setresuid to uid/gid below
    uid_t uid;
    gid_t gid;
    const gid_t *groups;         ///< supplementary groups (with change_identity)
    int ngroups;
    uint64_t capabilities;       ///< mask kept as effective+permitted+inheritable+ambient
    int limit_capabilities;      ///< 1: drop the bounding set and all caps not in the mask
    int parent_death_signal;     ///< 0 = none
    int new_session;             ///< 1: setsid() (own session and process group)
} csluice_spawn_request;

/// fork()s and, in the child, applies `req` and execve()s. The child only makes
/// async-signal-safe system calls. A failure in the child before exec is reported back
/// over a close-on-exec pipe, so the return value tells the whole story:
/// the child's pid on success; `-errno` when fork or a child step failed, with the failing
/// step's name stored in `failed_step` (at least 32 bytes; may be NULL).
pid_t csluice_spawn(const csluice_spawn_request *req, char *failed_step, size_t failed_step_len);

/// Installs handlers for `signals` that write the signal number (one byte) to a
/// non-blocking close-on-exec pipe, and returns the pipe's read end (or -errno). The
/// self-pipe turns signals into poll() events for a single-threaded event loop and works
/// whatever the other threads' signal masks are. Call once.
int csluice_signal_pipe(const int *signals, int count);

/// waitpid(-1, WNOHANG) decoded: returns the pid reaped, 0 when no child has changed
/// state, -errno (ECHILD when there are no children). `*exit_code` is the exit status when
/// the child exited, else -1; `*term_signal` the signal that killed it, else 0.
pid_t csluice_reap_child(int *exit_code, int *term_signal);

/// waitpid(pid, blocking or WNOHANG) decoded like csluice_reap_child; EINTR is retried.
pid_t csluice_wait_child(pid_t pid, int nohang, int *exit_code, int *term_signal);

/// kill(pid, sig). Returns 0 or -errno.
int csluice_kill(pid_t pid, int sig);

// MARK: - TUN

/// Opens /dev/net/tun and attaches to (or creates) the TUN interface `name` with
/// IFF_TUN | IFF_NO_PI (| IFF_VNET_HDR, | IFF_MULTI_QUEUE as requested). The actual name
/// is copied to `actual_name` (at least 16 bytes). Returns the fd (O_CLOEXEC) or -errno.
int csluice_tun_open(const char *name, int vnet_hdr, int multi_queue, char *actual_name);

/// The same as csluice_tun_open on an already open, not yet attached /dev/net/tun
/// descriptor `fd` (opened by a process allowed to open the device node). Returns `fd` or
/// -errno; on failure `fd` stays open and owned by the caller.
int csluice_tun_attach(int fd, const char *name, int vnet_hdr, int multi_queue, char *actual_name);

/// TUNSETIFF on an already open, not yet attached /dev/net/tun descriptor `fd` with IFF_TUN alone: every
/// packet read or written carries the 4-byte packet-information header (struct tun_pi), as wireguard-go up to
/// 0.0.20230223 expects of a descriptor it is given (`WG_TUN_FD`). Returns `fd` or -errno; on failure `fd` stays
/// open and owned by the caller.
int csluice_tun_attach_with_packet_info(int fd, const char *name, char *actual_name);

/// TUNSETPERSIST: keep the device after the last descriptor closes (1) or not (0).
int csluice_tun_set_persist(int fd, int on);

/// TUNSETOWNER: the uid that may attach to the device without CAP_NET_ADMIN.
int csluice_tun_set_owner(int fd, uid_t uid);

/// TUNGETIFF: the interface name of an open TUN descriptor (at least 16 bytes).
int csluice_tun_get_name(int fd, char *name);

/// TUNSETOFFLOAD with TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 on a device opened with IFF_VNET_HDR: the
/// kernel may then hand over TCP super-packets (up to 64 KiB) with partial checksums, described by the
/// virtio-net header in front of each packet, and takes them back the same way.
int csluice_tun_enable_tso(int fd);

/// One packet to a TUN device opened with IFF_VNET_HDR: the header, then the packet, in one writev.
/// Retries on EINTR; returns the bytes written or -errno.
ssize_t csluice_tun_write_vnet(int fd, const void *header, size_t header_length, const void *packet, size_t length);

// MARK: - epoll and splice

/// epoll_create1(EPOLL_CLOEXEC).
int csluice_epoll_create(void);

/// epoll_ctl with the event mask and a 64-bit cookie. `op`: 1 add, 2 delete, 3 modify.
int csluice_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t cookie);

/// epoll_wait into parallel arrays of cookies and event masks. Returns the count, 0 on
/// timeout, -errno on failure (EINTR is retried).
int csluice_epoll_wait(int epfd, uint64_t *cookies, uint32_t *events, int max, int timeout_ms);

/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK): a wakeup for an epoll loop.
int csluice_eventfd(void);

/// splice(2) with SPLICE_F_MOVE | SPLICE_F_NONBLOCK (| SPLICE_F_MORE when `more`).
ssize_t csluice_splice(int fd_in, int fd_out, size_t len, int more);

/// pipe2(O_CLOEXEC | O_NONBLOCK) sized to `size` bytes (F_SETPIPE_SZ, best effort).
int csluice_splice_pipe(int fds[2], int size);

/// Raises the soft RLIMIT_NOFILE to the hard limit (no privilege needed) and stores the limits in force
/// afterwards in `*soft` and `*hard` (RLIM_INFINITY as UINT64_MAX). 0, or -errno of getrlimit/setrlimit.
int csluice_raise_nofile(uint64_t *soft, uint64_t *hard);

// MARK: - IP sockets
// Addresses are 4 (AF_INET) or 16 (AF_INET6) bytes in network order; ports in host order.

/// socket(family, type | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), protocol).
int csluice_socket(int family, int type, int protocol, int nonblock);

/// bind() to address:port. `freebind` sets IP_FREEBIND, `reuse` SO_REUSEADDR.
int csluice_bind_inet(int fd, int family, const uint8_t *address, uint16_t port, int freebind, int reuse);

/// connect() to address:port; a non-blocking socket returns -EINPROGRESS.
int csluice_connect_inet(int fd, int family, const uint8_t *address, uint16_t port);

/// sendto() address:port with MSG_NOSIGNAL | MSG_DONTWAIT.
ssize_t csluice_sendto_inet(int fd, const void *buf, size_t len, int family, const uint8_t *address, uint16_t port);

/// recvfrom() with MSG_DONTWAIT; the sender's family, address (16 bytes) and port.
ssize_t csluice_recvfrom_inet(int fd, void *buf, size_t len, int *family, uint8_t *address, uint16_t *port);

/// getsockname() (peer = 0) or getpeername() (peer = 1) as family, address (16 bytes), port.
int csluice_socket_address(int fd, int peer, int *family, uint8_t *address, uint16_t *port);

/// accept4(SOCK_CLOEXEC | SOCK_NONBLOCK) returning the peer address too.
int csluice_accept_inet(int fd, int *family, uint8_t *address, uint16_t *port);

/// setsockopt with an int value.
int csluice_setsockopt_int(int fd, int level, int name, int value);

/// getsockopt SO_ERROR: the pending error (0 when none) or -errno of the call.
int csluice_socket_error(int fd);

/// SO_BINDTODEVICE.
int csluice_bind_to_device(int fd, const char *ifname);

/// SO_LINGER {1, 0}: the next close() sends RST instead of FIN.
int csluice_set_linger_reset(int fd);

/// shutdown(fd, SHUT_WR).
int csluice_shutdown_write(int fd);

/// write() with EINTR retried. Returns bytes written or -errno.
ssize_t csluice_write(int fd, const void *buf, size_t len);

/// read() with EINTR retried. Returns bytes read or -errno.
ssize_t csluice_read(int fd, void *buf, size_t len);

/// recv() with EINTR retried (MSG_PEEK looks at a socket's bytes without taking them).
/// Returns bytes received or -errno.
ssize_t csluice_recv(int fd, void *buf, size_t len, int flags);

#ifdef __cplusplus
}
#endif
